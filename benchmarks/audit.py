"""``securedd audit`` on MNIST IPC 10 sets: its wall time with the default suite, and its findings.

Every case distils an MNIST set at IPC 10 (cached in ``--work``; a finished case is not
repeated), then runs the audit with the default suite (``AuditConfig()``: every stage,
every architecture of the zoo that fits, 2 networks each, 200 epochs with DSA) or with
``--stages``, timed end to end (report files included). The first case's HTML report is
rendered by headless chromium into ``docs/images/audit_<case>.png``.

Cases: ``METHOD[:ITERATIONS][:nodsa]``, e.g. ``dm:200`` (DM, 200 iterations, DSA in its
matching) and ``dm:200:nodsa`` (the same without DSA: the study's appendix C compares the
robustness of sets made with and without it).

Study (CIFAR-10, section 4.5): sets from DM, DSA and MTT give models more robust than the
full-data model once DeepFool's budget passes some strength; MTT's are the least robust.

Usage:
    python benchmarks/audit.py --data-root $SECUREDD_DATA --cases dm:200
    python benchmarks/audit.py --data-root $SECUREDD_DATA --cases dm:200 dm:200:nodsa --stages robustness

Results go to ``benchmarks/results/audit.json`` (``--results`` to change).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import load_results, save_results  # noqa: E402

RESULTS = HERE / "results" / "audit.json"
IMAGES = HERE.parent / "docs" / "images"


def artifact_for(case: str, work: Path, data_root: str | None, seed: int) -> Path:
    """The case's MNIST IPC 10 artifact in ``work``, distilled on first use with ``securedd distill``
    (the method's MNIST preset, as a user gets it)."""
    from securedd.cli.main import main as cli

    method, *rest = case.split(":")
    out = work / f"mnist_{case.replace(':', '_')}_ipc10.safetensors"
    if not out.exists():
        argv = ["distill", "--dataset", "mnist", "--method", method, "--ipc", "10", "--seed", str(seed),
                "--out", str(out)]
        argv += ["--data-root", data_root] if data_root else []
        argv += ["--resume"] if Path(str(out) + ".ckpt").exists() else []
        argv += [f"method.iterations={v}" for v in rest if v.isdigit()]
        argv += ["method.dsa=false"] if "nodsa" in rest else []
        work.mkdir(parents=True, exist_ok=True)
        if cli(argv) != 0:
            raise SystemExit(f"distilling {case} failed")
    return out


def screenshot(html: Path, png: Path) -> bool:
    """Render ``html`` with headless chromium into ``png``; False when no browser is found."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if browser is None:
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,4200", f"--screenshot={png}", html.resolve().as_uri()],
                   capture_output=True, timeout=300, check=False)
    return png.is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("SECUREDD_DATA"))
    parser.add_argument("--cases", nargs="+", default=["dm:200"])
    parser.add_argument("--stages", help="comma-separated stages (default: the default suite)")
    parser.add_argument("--work", type=Path, default=Path("audit-bench"), help="artifacts and reports")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    import torch

    from securedd.audit.report import write_report
    from securedd.audit.suite import AuditConfig, run_audit

    results = load_results(args.results)
    config = AuditConfig(stages=tuple(args.stages.split(","))) if args.stages else AuditConfig()
    for n, case in enumerate(args.cases):
        key = f"{case}:stages={args.stages or 'default'}"
        if key in results:
            print(key, "done:", results[key]["seconds_total"], "s")
            continue
        path = artifact_for(case, args.work, args.data_root, args.seed)
        start = time.perf_counter()
        audit = run_audit(path, config, data_root=args.data_root)
        files = write_report(audit, args.work / f"report_{case.replace(':', '_')}_{args.stages or 'default'}")
        seconds = time.perf_counter() - start
        results[key] = {"artifact_sha256": audit.artifact["sha256"], "threads": torch.get_num_threads(),
                        "cpus": os.cpu_count(), "seconds_total": round(seconds, 1), "seconds": audit.seconds,
                        "summary": audit.summary, "sections": {k: v for k, v in audit.sections.items()
                                                               if k != "memorisation"},
                        "memorisation": {k: v for k, v in audit.sections.get("memorisation", {}).items()
                                         if k != "per_image"}}
        save_results(args.results, results)
        print(f"{key}: {seconds:.0f} s, files {', '.join(p.name for p in files.values())}", flush=True)
        if n == 0 and not args.stages:
            png = IMAGES / f"audit_mnist_{case.replace(':', '_')}_ipc10.png"
            print("screenshot:", png if screenshot(files["html"], png) else "no headless browser found")


if __name__ == "__main__":
    main()
