"""Evaluation inside a training run. The trainer calls `run_due` at every eval tick
(eval.every_steps) and at the end; each suite runs when its own every_steps divides the step.
Only rank 0 evaluates (the others wait at the trainer's barrier): keep in-training suites small
(`limit`) so that wait stays short. Scalars go to the metrics file and wandb as
eval/<benchmark>/<subset>/<metric>; wandb also gets a table of example candidate sets and, at the
end, the skill-dynamics plot (also written to RUN_DIR/dynamics/)."""
import time

from PIL import Image

from .contract import run_suite
from .encode import load_image


def due(ev, step, final):
    return final or bool(ev.every_steps and step % ev.every_steps == 0)


def run_due(evaluators, step, final, model, tokenizer, preprocess, device, metrics, run_dir):
    results, media = {}, {}
    for name, ev in evaluators.items():
        if not due(ev, step, final):
            continue
        t0 = time.perf_counter()
        res = run_suite(ev, model, tokenizer, preprocess, device)
        for k, v in res.flat().items():
            results[f"eval/{name}/{k}"] = v
        results[f"eval_time/{name}"] = time.perf_counter() - t0
        if res.examples and metrics.wandb is not None:
            media[f"examples/{name}"] = wandb_table(res.examples)
    if results:
        metrics.log(step, results)
    if final:
        from .dynamics import write_report
        try:
            png = write_report(run_dir)["png"]
            if png and metrics.wandb is not None:
                import wandb
                media["dynamics/skills"] = wandb.Image(str(png))
        except ValueError as e:  # e.g. a single evaluation: nothing to plot, say why
            print(f"[hnclip] dynamics report skipped: {e}", flush=True)
    if media:
        metrics.log_media(step, media)
    return results


def final_summary(evaluators, results):
    """What the trainer writes to eval_final.json and prints at the end, without knowing any
    benchmark: the first suite's metrics (keys without the eval/<suite>/ prefix; the default
    config's first suite is SPEC, hence <subset>/i2t ...), and each suite's own table."""
    from .contract import is_count
    from .reference import summary_table
    per = {name: {k[len(f"eval/{name}/"):]: v for k, v in results.items()
                  if k.startswith(f"eval/{name}/") and not is_count(k)} for name in evaluators}
    first = next(iter(per.values()), {})
    text = "\n\n".join(summary_table(name, ev, per[name]) for name, ev in evaluators.items() if per[name])
    return first, text


def strip(keys, height=96):
    """The images of one candidate set side by side."""
    imgs = [load_image(k) for k in keys]
    imgs = [im.resize((max(1, im.width * height // im.height), height)) for im in imgs]
    out = Image.new("RGB", (sum(im.width for im in imgs) + 4 * (len(imgs) - 1), height), "white")
    x = 0
    for im in imgs:
        out.paste(im, (x, 0))
        x += im.width + 4
    return out


def example_rows(examples):
    """Plain rows (no wandb): strip image, numbered captions, each image's scores against every
    caption with the right one starred and the winner marked, images ranked right."""
    rows = []
    for ex in examples:
        caps = "\n".join(f"[{j}] {c}" for j, c in enumerate(ex["captions"]))
        lines, right = [], 0
        for lab, row in zip(ex["image_labels"], ex["scores"]):
            best = max(range(len(row)), key=lambda j: row[j])
            ok = row[lab] > max(s for j, s in enumerate(row) if j != lab) if len(row) > 1 else True
            right += ok
            marks = [f"{s:.3f}{'*' if j == lab else ''}{'<' if j == best else ''}" for j, s in enumerate(row)]
            lines.append(f"image {lab}: " + " ".join(marks))
        rows.append([ex["benchmark"], ex["subset"], ex["images"], caps, "\n".join(lines),
                     f"{right}/{len(lines)}"])
    return rows


def wandb_table(examples):
    import wandb
    table = wandb.Table(columns=["benchmark", "subset", "images", "captions", "scores (* right, < chosen)",
                                 "right"])
    for b, s, keys, caps, scores, right in example_rows(examples):
        table.add_data(b, s, wandb.Image(strip(keys)), caps, scores, right)
    return table
