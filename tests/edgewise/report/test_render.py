from html.parser import HTMLParser

from edgewise.report.render import render_html, render_markdown, write_report

ROWS = [
    {"model": "m", "stage": "float32", "task": "classification", "score_name": "accuracy", "score": 0.97,
     "params": 50826, "macs": 50560, "size_bytes": 206000, "version": "float32", "kind": "float32",
     "runs_as": "float32"},
    {"model": "m", "stage": "ecq 4-bit", "task": "classification", "score_name": "accuracy", "score": 0.96,
     "params": 50826, "macs": 50560, "size_bytes": 26000, "version": "quantized", "kind": "quantized",
     "runs_as": "quantized"},
    {"model": "seg", "stage": "float32", "task": "segmentation", "score_name": "mIoU", "score": 0.81,
     "params": 100000, "macs": 9_000_000, "size_bytes": 420000, "version": "float32", "kind": "float32",
     "runs_as": "float32", "onnx_score": 0.8097},
]
MANIFEST = {"run": "t", "updated": "2026-11-21T00:00:00+00:00",
            "environment": {"cpu": "cpu", "logical_cpus": 2, "memory_bytes": 2**34, "platform": "linux",
                            "python": "3.11", "versions": {"torch": "2.14.1"}}}


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.cells.append(data.strip())


def test_html_is_self_contained_with_one_row_per_stage():
    page = render_html(ROWS, MANIFEST)
    parser = _Tables()
    parser.feed(page)
    assert "0.9700" in parser.cells and "0.8100" in parser.cells and "201.2 KiB" in parser.cells
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert "http" not in page.replace("http-equiv", "")


def test_markdown_table(tmp_path):
    text = render_markdown(ROWS, MANIFEST)
    assert "| m | float32 | accuracy | 0.9700 | not exported | 50.8 k | 50.6 k | 201.2 KiB |" in text
    assert "| seg | float32 | mIoU | 0.8100 | 0.8097 |" in text
    paths = write_report(tmp_path, ROWS, MANIFEST)
    assert paths["html"].is_file() and paths["markdown"].read_text() == text
