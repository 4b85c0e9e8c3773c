"""report.md: the human-readable training report kept in the run directory."""

from __future__ import annotations

from typing import Any

from cloud.data.report import render_report


def render_training_report(run: dict[str, Any]) -> str:
    """Data report, hyper-parameters, per-epoch history and the held-out metrics."""
    m = run["metrics"]
    hp = run["hyperparameters"]
    lines = [
        f"# Training report: {run['name']}",
        "",
        f"- created: {run['created']}, code version `{run['code_version']}`",
        f"- architecture: **{run['arch']}** ({run['parameters']:,} parameters), "
        f"input {run['input']['shape']}, {len(run['labels'])} classes",
        f"- **test accuracy {m['test_accuracy']:.4f}**, validation accuracy "
        f"{m['val_accuracy']:.4f}, test loss {m['test_loss']:.4f}",
        f"- best epoch {m['best_epoch']} of {m['epochs_run']} run "
        f"(early stopping on val_loss, patience {hp['patience']}); training took "
        f"{m['train_seconds']:.1f}s, the whole run {m['total_seconds']:.1f}s"
        + (f" (epoch budget: {hp['epoch_budget']})" if hp.get("epoch_budget") else ""),
        f"- seed {run['seed']}; hyper-parameters: "
        + ", ".join(f"{k}={v}" for k, v in hp.items() if v is not None and k != "epoch_budget"),
        *[f"- **warning: {w}**" for w in run.get("warnings", [])],
        "",
        "## Data",
        "",
        render_report(run["dataset"]["report"]),
        "## Preprocessing (applied on the device before the model)",
        "",
        _describe_preprocessing(run["preprocessing"]),
        "",
        "## History",
        "",
    ]
    h = run["history"]
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in h]
    lines.append("| epoch | " + " | ".join(keys) + " |")
    lines.append("|---:|" + "---:|" * len(keys))
    for i in range(len(h.get("loss", []))):
        mark = " *" if i + 1 == m["best_epoch"] else ""
        lines.append(f"| {i + 1}{mark} | " + " | ".join(f"{h[k][i]:.4f}" for k in keys) + " |")
    lines += ["", "`*` = the epoch whose weights were kept.", ""]
    return "\n".join(lines)


def _describe_preprocessing(p: dict[str, Any]) -> str:
    if p["kind"] == "image":
        return (
            f"Image {p['height']}x{p['width']}x{p['channels']} ({p['color']}, NHWC); raw values in "
            f"{p['raw_range']}; model_input = raw * {p['scale']:.6g} + {p['offset']:.6g}."
        )
    return (
        f"Tabular, {len(p['features'])} features in order {p['features'][:10]}"
        f"{' ...' if len(p['features']) > 10 else ''}; model_input = (x - mean) / std with the "
        "train-split statistics stored in run.json."
    )
