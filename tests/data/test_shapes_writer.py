"""The shard-writing command: layout, plain-webdataset readability, determinism, reruns."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import webdataset as wds

from unclip.data.shapes import Scene, parse_caption
from unclip.data.shapes.__main__ import main
from unclip.data.shapes.writer import write_dataset

REPO = Path(__file__).resolve().parents[2]
COUNTS = {"train": 23, "val": 8, "test": 8}


def _args(out: Path, *extra: str) -> list[str]:
    return ["--out", str(out), "--train", "23", "--val", "8", "--test", "8", "--shard-size", "10",
            "--quiet", *extra]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_command_writes_readable_deterministic_shards(tmp_path: Path) -> None:
    out = tmp_path / "a"
    command = [sys.executable, "-m", "unclip.data.shapes", *_args(out, "--workers", "2")]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "train: wrote 23 of 23 samples" in run.stdout
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "info.json", "shapes-000000.tar", "shapes-000001.tar", "shapes-000002.tar"]
    info = json.loads((out / "train" / "info.json").read_text())
    assert info["complete"] and info["count"] == 23 and info["num_shards"] == 3

    seeds = {}
    for split, count in COUNTS.items():
        last = (count - 1) // 10
        pattern = f"{out / split}/shapes-{{000000..{last:06d}}}.tar"
        samples = list(wds.WebDataset(pattern, shardshuffle=False))
        assert len(samples) == count and len({s["__key__"] for s in samples}) == count
        for sample in samples:
            assert sample["png"][:8] == b"\x89PNG\r\n\x1a\n"
            meta = json.loads(sample["json"])
            text = sample["txt"].decode()
            assert meta["caption"]["text"] == text
            assert Scene.from_json(meta).satisfies(parse_caption(text).spec)
        seeds[split] = {json.loads(s["json"])["seed"] for s in samples}
    assert not (seeds["train"] & seeds["val"] or seeds["train"] & seeds["test"]
                or seeds["val"] & seeds["test"])

    with tarfile.open(out / "val" / "shapes-000000.tar") as tar:
        assert not any(m.pax_headers for m in tar.getmembers())  # plain ustar: fast to read

    write_dataset(tmp_path / "b", COUNTS, seed=0, workers=0, shard_size=10, progress=False)
    assert _files(out) == _files(tmp_path / "b")  # same bytes, whatever the process count


def test_rerun_does_no_work_and_other_configs_need_overwrite(tmp_path: Path, capsys) -> None:
    reports = write_dataset(tmp_path, COUNTS, workers=0, shard_size=10, progress=False)
    assert [r.written for r in reports] == [23, 8, 8]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tar")}
    assert main(_args(tmp_path, "--workers", "0")) == 0
    assert capsys.readouterr().out.count("already complete") == 3
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tar")}

    assert main(_args(tmp_path, "--workers", "0", "--seed", "1")) == 2
    error = capsys.readouterr().err
    assert "--overwrite" in error and "'seed': 0" in error
    assert main(_args(tmp_path, "--workers", "0", "--seed", "1", "--overwrite")) == 0
    assert json.loads((tmp_path / "val" / "info.json").read_text())["seed"] == 1


def test_interrupted_split_resumes_missing_shards_only(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 23}, workers=0, shard_size=10, progress=False)
    before = _files(tmp_path)
    info_path = tmp_path / "train" / "info.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "complete": False}))
    (tmp_path / "train" / "shapes-000001.tar").unlink()
    (tmp_path / "train" / "shapes-000002.tar.123.tmp").write_bytes(b"partial")
    [report] = write_dataset(tmp_path, {"train": 23}, workers=0, shard_size=10, progress=False)
    assert report.written == 10 and not report.skipped
    assert _files(tmp_path) == before
