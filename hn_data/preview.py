"""Contact sheets: one PNG per concept, a row per candidate set, each member captioned.

    python -m hn_data.preview out=docs/img size=128 rows=3 \\
        [backend=diffusion backend_options=...]"""
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .cli import command, setting
from .engine import EngineKeys, engine_config, make_set

PAD, TEXT_H = 4, 36


def sheet(sets, size):
    cols = max(len(cs.images) for cs in sets)
    w, h = cols * (size + PAD) + PAD, len(sets) * (size + TEXT_H + PAD) + PAD
    out = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for r, cs in enumerate(sets):
        y = PAD + r * (size + TEXT_H + PAD)
        for c, (img, cap) in enumerate(zip(cs.images, cs.captions)):
            x = PAD + c * (size + PAD)
            out.paste(img.resize((size, size)), (x, y))
            lines = textwrap.wrap(cap, width=max(8, size // 6))[:3]
            d.multiline_text((x, y + size + 1), "\n".join(lines), fill=(0, 0, 0), spacing=1)
    return out


@dataclass
class PreviewCommand(EngineKeys):
    out: str = setting("docs/img", "folder for the <subset>.png sheets (the run directory)")
    rows: int = setting(3, "candidate sets per sheet")


def preview(keys: PreviewCommand):
    cfg = engine_config(keys)
    out = Path(keys.out)
    out.mkdir(parents=True, exist_ok=True)
    for subset in cfg.subsets:
        cfg.subsets = [subset]
        sets = [make_set(cfg, "train", i)[0] for i in range(keys.rows)]
        path = out / f"{subset}.png"
        sheet(sets, keys.size).save(path)
        print(path)


main = command(PreviewCommand, preview, prog="hnclip-preview", doc=__doc__, run_dir="${out}",
               check=engine_config)


if __name__ == "__main__":
    main()
