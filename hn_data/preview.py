"""Contact sheets: one PNG per concept, a row per candidate set, each member captioned.

    python -m hn_data.preview --out docs/img --size 128 --rows 3 \\
        [--backend diffusion --backend-options ...]"""
import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from .engine import add_engine_args, config_from_args, make_set

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--rows", type=int, default=3, help="candidate sets per sheet")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for subset in cfg.subsets:
        cfg.subsets = [subset]
        sets = [make_set(cfg, "train", i)[0] for i in range(args.rows)]
        path = out / f"{subset}.png"
        sheet(sets, args.size).save(path)
        print(path)


if __name__ == "__main__":
    main()
