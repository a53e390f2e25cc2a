"""The report reads the store only: figures are stored artifacts, claims are stored rows."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from learnlab.errors import StoreError
from learnlab.report import build_report
from learnlab.runner import execute
from tests.report import toy_experiment as toy


@pytest.fixture
def toy_store(store):
    done = execute(toy, toy.Config(), store=store, preset="quick", device="cpu", quiet=True)
    smoke = execute(toy, toy.presets()["smoke"], store=store, preset="smoke", device="cpu", quiet=True)
    failed = execute(toy, toy.Config(fail_at=8), store=store, preset="quick", device="cpu", quiet=True)
    assert done.status == smoke.status == "completed" and failed.status == "failed"
    return store, done.run_id, failed.run_id


def test_report_has_summary_sections_and_a_page_per_run(toy_store, tmp_path):
    store, done, failed = toy_store
    index = build_report(store, tmp_path / "report", progress=False)
    page = index.read_text()
    assert "Summary" in page and 'href="#toy"' in page and "All runs" in page
    assert f"runs/{done}.html" in page and f"runs/{failed}.html" in page
    assert "Test accuracy against step" in page  # a caption in words
    run_page = (tmp_path / "report" / "runs" / f"{done}.html").read_text()
    assert "paper claims" not in run_page and "reproduced" in run_page and "Fig. 1" in run_page
    assert (tmp_path / "report" / "figures" / done / "accuracy.png").exists()
    # A failed run's page shows the curves it logged and how to resume.
    failed_page = (tmp_path / "report" / "runs" / f"{failed}.html").read_text()
    assert "partial-curves.png" in failed_page and f"--resume {failed}" in failed_page


def test_report_needs_no_experiment_code(toy_store, tmp_path):
    """Rendered in a fresh interpreter where importing any experiment fails."""
    store, done, _ = toy_store
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("learnlab.experiments") or name.startswith("tests.report"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from learnlab.store import Store
from learnlab.report import build_report
print(build_report(Store({str(store.path)!r}), {str(tmp_path / 'out')!r}, progress=False))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Test accuracy against step" in Path(result.stdout.strip()).read_text()


def test_report_source_imports_no_experiment():
    source = "".join(p.read_text() for p in Path(build_report.__code__.co_filename).parent.glob("*.py"))
    assert "learnlab.experiments" not in source


def test_an_empty_store_has_nothing_to_report(store, tmp_path):
    with pytest.raises(StoreError, match="No runs"):
        build_report(store, tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_report_renders_in_headless_chromium(toy_store, tmp_path):
    """The page loads without console errors, every image loads; a screenshot is kept."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser here (install Debian's chromium; .ci/run does)")
    store, _, _ = toy_store
    index = build_report(store, tmp_path / "report", progress=False)
    probe = tmp_path / "report" / "probe.html"
    # The probe page loads the report in an iframe and writes what it found into its title.
    probe.write_text("""<!doctype html><html><head><title>pending</title></head><body>
<iframe id="f" src="index.html" style="width:1200px;height:3000px"></iframe>
<script>
var errors = [];
var f = document.getElementById("f");
f.addEventListener("load", function () {
  var w = f.contentWindow;
  w.addEventListener("error", function (e) { errors.push(String(e.message)); });
  var images = Array.from(f.contentDocument.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  document.title = "images=" + images.length + " broken=" + broken + " errors=" + errors.length;
});
</script></body></html>""")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
              "--virtual-time-budget=5000"]
    dom = subprocess.run(common + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = dom.stdout.split("<title>")[1].split("</title>")[0]
    images = int(title.split("images=")[1].split()[0])
    assert images >= 1 and "broken=0" in title and "errors=0" in title, title
    # Console errors of the page itself (e.g. a script error) show up on stderr with --enable-logging.
    shot = tmp_path / "report" / "screenshot.png"
    logged = subprocess.run(common + ["--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                                      "--window-size=1200,2400", index.as_uri()], capture_output=True, text=True,
                            timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert "Uncaught" not in logged.stderr, logged.stderr[-2000:]
    keep = Path("runs") / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)


def test_markdown_result_pages_come_from_the_store(toy_store, tmp_path):
    from learnlab.report.markdown import write_result_pages

    store, done, _ = toy_store
    index = write_result_pages(store, tmp_path / "results")
    page = (tmp_path / "results" / "toy.md").read_text()
    assert "learnlab run toy --preset quick" in page and done in page and "**reproduced**" in page
    assert "Fig. 1" in page and "paper Fig. 1: 0.6" in page and "(figures/toy-quick-accuracy.svg)" in page
    assert (tmp_path / "results" / "figures" / "toy-quick-accuracy.svg").exists()
    assert "# Results" in index.read_text()
