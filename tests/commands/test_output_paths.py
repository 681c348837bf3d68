"""Output paths checked before any work (issue 11): a folder where a file is written (or the reverse), a
parent that is a file, and an output that is the command's own input are clear errors, exit 2, no
traceback, input untouched. Each case gives an input that would itself fail, so an error about the output
shows the check ran first."""

from __future__ import annotations

import pytest

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.fileio import atomic_write, check_output
from tests.cli_plugin import cli


def fails(*args: object) -> str:
    r = cli(*map(str, args))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr


def test_file_outputs_that_are_folders(tmp_path):
    out = tmp_path / "out.jsonl"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    missing = tmp_path / "no_such_corpus"
    for force in ((), ("--force",)):
        err = fails("convert", "--format", "brat", "--input", missing, "--output", out, *force)
        assert f"{out} is a folder" in err and "no_such_corpus" not in err
        err = fails("score", "--gold", missing, "--pred", missing, "--format", "brat", "--json", out, *force)
        assert f"{out} is a folder" in err
        err = fails("render", "--corpus", missing, "--task", "ce", "--output", out, *force)
        assert f"{out} is a folder" in err
        err = fails("export", "--format", "pubtator", "--input", missing, "--output", out, *force)
        assert f"{out} is a folder" in err
    assert (out / "keep.txt").read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty} is a folder" in fails("convert", "--format", "brat", "--input", missing, "--output", empty)


def test_folder_outputs_that_are_files_and_parents_that_are_files(tmp_path):
    a_file = tmp_path / "release.txt"
    a_file.write_text("x")
    missing = tmp_path / "no_such_corpus"
    err = fails("export", "--format", "brat", "--input", missing, "--output", a_file, "--force")
    assert f"{a_file} is a file" in err and a_file.read_text() == "x"
    err = fails("convert", "--dataset", "n2c2_2018", "--input", missing, "--output", a_file, "--force")
    assert f"{a_file} is a file" in err
    err = fails("convert", "--format", "brat", "--input", missing, "--output", a_file / "out.jsonl")
    assert f"cannot write under {a_file}, which is a file" in err


def test_render_output_equal_to_the_corpus_is_refused(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"id": "d1", "text": "No rash."}\n')
    for spelled in (corpus, tmp_path / "." / "docs.jsonl"):
        err = fails("render", "--corpus", corpus, "--task", "ce", "--output", spelled, "--force")
        assert "is the input" in err
        err = fails("render", "--corpus", corpus, "--task", "ce", "--output", tmp_path / "r.jsonl",
                    "--report", spelled, "--force")
        assert "is the input" in err
    assert corpus.read_text() == '{"id": "d1", "text": "No rash."}\n'
    err = fails("convert", "--format", "jsonl", "--input", corpus, "--output", corpus, "--force")
    assert "is the input" in err and corpus.read_text().startswith('{"id": "d1"')


def test_folder_output_containing_the_input_is_refused(tmp_path):
    corpus = tmp_path / "work" / "docs.jsonl"
    corpus.parent.mkdir()
    corpus.write_text('{"id": "d1", "text": "No rash."}\n')
    err = fails("export", "--format", "brat", "--input", corpus, "--output", tmp_path / "work", "--force")
    assert "contains the input" in err and corpus.exists()


def test_check_output_in_the_library(tmp_path):
    (tmp_path / "preds.jsonl").mkdir()
    with pytest.raises(ClinieError, match="is a folder"):
        check_output(tmp_path / "preds.jsonl", force=True)  # a file suffix: taken for a file
    check_output(tmp_path / "preds.jsonl", force=True, kind="dir")
    with pytest.raises(ClinieError, match="is a folder"), atomic_write(tmp_path / "preds.jsonl") as fh:
        fh.write("x")
    assert check_output(tmp_path / "new.jsonl", kind="file") == tmp_path / "new.jsonl"
