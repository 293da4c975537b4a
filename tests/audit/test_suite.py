"""``securedd audit``: the stages, the three report files, the JSON schema, refusals."""

from __future__ import annotations

import json
import shutil
import subprocess

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from securedd.api import distill
from securedd.audit.report import AUDIT_SCHEMA, write_report
from securedd.audit.suite import AuditConfig, run_audit
from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.errors import ConfigError

SMALL = AuditConfig(models=("convnet", "mlp"), runs=1, epochs=5, dsa=False, reference_epochs=1,
                    reference_min_steps=20, mia_samples=100, tsne_points=40, robustness_samples=60)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=random", "method.ipc=2", "seed=0"])
    return distill(cfg, out=tmp_path_factory.mktemp("audit") / "random.safetensors", progress=False)


@pytest.fixture(scope="module")
def report(artifact, tmp_path_factory):
    """One audit of ``artifact`` and its three files, read by the tests below."""
    torch.set_num_threads(1)
    return write_report(run_audit(artifact, SMALL, progress=False), tmp_path_factory.mktemp("report"))


def test_the_audit_writes_three_files_that_read_well_and_validate(artifact, report):
    files = report
    found = json.loads(files["json"].read_text())
    jsonschema.validate(found, AUDIT_SCHEMA)
    assert [r["aspect"] for r in found["summary"]] == ["utility", "privacy", "robustness", "memorisation",
                                                       "fairness"]
    assert found["artifact"]["sha256"] == artifact.sha256 and found["artifact"]["method"] == "random"
    memo = found["sections"]["memorisation"]
    assert memo["near_copy_share"] == 1.0 and memo["max_ssim"] == pytest.approx(1.0)  # random real images are copies
    assert {m["model"] for m in found["sections"]["utility"]["models"]} == {"convnet", "mlp"}
    assert 0 <= found["sections"]["privacy"]["distilled"]["auc"] <= 1
    robust = found["sections"]["robustness"]
    assert robust["epsilons"][0] == 0 and len(robust["distilled"]) == len(robust["epsilons"])
    assert all(np.diff(robust["reference"]) <= 0) and robust["reference"][-1] < robust["reference"][0]
    md = files["md"].read_text()
    assert md.index("## Summary") < md.index("## Utility") and "audit_roc.png" in md and artifact.sha256 in md
    page = files["html"].read_text()
    assert page.count("data:image/png;base64,") == 5 and all(
        f"id='{s}'" in page for s in ("summary", "utility", "privacy", "robustness", "fairness"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**found, "summary": []}, AUDIT_SCHEMA)


def test_bad_stages_and_learned_step_sets_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown audit stage"):
        AuditConfig(stages=("utility", "vibes"))
    cfg = apply_overrides(RunConfig(), ["data.name=digits", "method.name=dd", "method.ipc=1", "model=lenet",
                                        "method.iterations=1", "seed=0"])
    dd = distill(cfg, out=tmp_path / "dd.safetensors", progress=False)
    with pytest.raises(ConfigError, match="securedd evaluate"):
        run_audit(dd, SMALL, progress=False)


def test_cli_audit_writes_next_to_the_artifact(artifact, capsys):
    torch.set_num_threads(1)
    assert main(["audit", str(artifact.path), "--stages", "memorisation,privacy", "--models", "mlp", "--runs", "1",
                 "--epochs", "3", "--no-dsa", "--reference-epochs", "1", "--reference-min-steps", "20", "--mia-samples", "50",
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "| memorisation | near-copies" in out and (artifact.path.parent / "audit.html").is_file()


def _browser() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)


@pytest.mark.skipif(_browser() is None, reason="no headless browser (make chromium installs Debian's)")
def test_the_html_report_renders_with_its_plots_in_a_headless_browser(report, tmp_path):
    files = report
    shot = tmp_path / "shot.png"
    done = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1100,3200", f"--screenshot={shot}", files["html"].resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert shot.is_file(), done.stderr
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert (pixels.min(0) < 60).all()  # black text and tables were drawn
    bar = np.abs(pixels.astype(int) - (0x3B, 0x6E, 0xA8)).sum(1) < 12  # the per-class plot's bars
    assert bar.sum() > 500, "the embedded plots did not render"


def test_cli_refuses_bad_deepfool_budgets(artifact, capsys):
    assert main(["audit", str(artifact.path), "--stages", "robustness", "--epsilons", "0,a", "-q"]) == 2
    assert "--epsilons takes comma-separated numbers" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="norm"):
        AuditConfig(norm="l1")
    assert AuditConfig(norm="l2").budgets[0] == 0 and AuditConfig(epsilons=(0.0, 0.1)).budgets == (0.0, 0.1)
