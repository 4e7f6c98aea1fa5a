"""``ssgraphrec data download`` against a local HTTP server on 127.0.0.1 (no other
address is touched): a good file, a tampered one, a truncated transfer resumed, a 404
and a server too slow for the timeout."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

import ssgraphrec.data.download as dl
from ssgraphrec.cli import main
from ssgraphrec.errors import SSGraphRecError

RATINGS = b"".join(f"{u}\t{i}\t1\n".encode() for u in range(40) for i in range(u % 7, 60, 9))
TRUSTS = b"".join(f"{u}\t{(u * 7 + 3) % 40}\n".encode() for u in range(40))


class Server:
    """Files by URL path; ``mode`` per path: ``ok``, ``tamper``, ``truncate`` or ``slow``."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.mode, self.ranges = files, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - the http.server API
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                mode = outer.mode.get(self.path, "ok")
                if mode == "slow":
                    time.sleep(3)
                if mode == "tamper":
                    body = body[:-2] + b"X\n"
                start = 0
                wanted = self.headers.get("Range")
                if wanted:
                    outer.ranges.append(wanted)
                    start = int(wanted.split("=")[1].split("-")[0])
                    self.send_response(206)
                else:
                    self.send_response(200)
                rest = body[start:]
                self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(rest[: len(rest) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(rest)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _pin(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture
def server(monkeypatch):
    """A mirror of a tiny 'lastfm' folder, and a manifest that pins its files."""
    manifest = {"lastfm": {"repository": "example/none", "ref": "0" * 40, "path": "lastfm",
                           "files": {"ratings.txt": _pin(RATINGS), "trusts.txt": _pin(TRUSTS)}}}
    monkeypatch.setattr(dl, "sources", lambda: manifest)
    srv = Server({"/lastfm/ratings.txt": RATINGS, "/lastfm/trusts.txt": TRUSTS})
    yield srv
    srv.close()


def get(server, root, **kw):
    return dl.download("lastfm", root, mirror=server.url, progress=False, log=lambda m: None,
                       **kw)


def test_a_good_mirror_gives_verified_files_and_nothing_else(server, tmp_path):
    written = get(server, tmp_path)
    assert [p.name for p in written] == ["ratings.txt", "trusts.txt"]
    assert (tmp_path / "lastfm" / "ratings.txt").read_bytes() == RATINGS
    assert sorted(p.name for p in (tmp_path / "lastfm").iterdir()) == ["ratings.txt", "trusts.txt"]
    assert dl.status("lastfm", tmp_path) == "present"
    assert get(server, tmp_path) == []           # present and verified: nothing fetched


def test_a_tampered_file_is_removed_and_named_with_both_hashes(server, tmp_path):
    server.mode["/lastfm/ratings.txt"] = "tamper"
    with pytest.raises(dl.ChecksumError) as info:
        get(server, tmp_path)
    message = str(info.value)
    assert "lastfm/ratings.txt" in message and _pin(RATINGS)["sha256"] in message
    assert "expected" in message and "removed" in message
    assert not list((tmp_path / "lastfm").iterdir())       # no file, no .part
    assert dl.status("lastfm", tmp_path) == "absent"


def test_a_truncated_transfer_leaves_no_file_and_resumes_with_a_range(server, tmp_path):
    server.mode["/lastfm/ratings.txt"] = "truncate"
    with pytest.raises(SSGraphRecError, match="transfer ended at .* run the command again"):
        get(server, tmp_path)
    assert not (tmp_path / "lastfm" / "ratings.txt").exists()
    assert dl.status("lastfm", tmp_path) == "absent"
    listed = CliRunner().invoke(main, ["data", "list", "--root", str(tmp_path)]).output
    assert "lastfm " in listed and "(absent in" in listed.split("lastfm ")[1].splitlines()[0]
    del server.mode["/lastfm/ratings.txt"]
    get(server, tmp_path)
    assert server.ranges == [f"bytes={len(RATINGS) // 2}-"]   # resumed where it stopped
    assert (tmp_path / "lastfm" / "ratings.txt").read_bytes() == RATINGS


def test_a_404_names_the_url_and_where_to_put_the_file(server, tmp_path):
    del server.files["/lastfm/trusts.txt"]
    with pytest.raises(SSGraphRecError) as info:
        get(server, tmp_path)
    message = str(info.value)
    assert f"{server.url}/lastfm/trusts.txt (HTTP 404" in message
    assert f"place the file by hand at {tmp_path / 'lastfm' / 'trusts.txt'}" in message
    assert "--mirror" in message


def test_a_server_slower_than_the_timeout_is_one_clear_error(server, tmp_path):
    server.mode["/lastfm/ratings.txt"] = "slow"
    with pytest.raises(SSGraphRecError, match="could not fetch .*timed out"):
        get(server, tmp_path, timeout=0.5)
    assert not (tmp_path / "lastfm" / "ratings.txt").exists()


def test_the_mirror_comes_from_the_environment_and_the_cli_says_one_line(server, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    result = CliRunner().invoke(main, ["data", "download", "lastfm", "--root", str(tmp_path),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "lastfm: fetched 2 file(s)" in result.output
    server.mode["/lastfm/ratings.txt"] = "tamper"
    (tmp_path / "lastfm" / "ratings.txt").unlink()
    bad = CliRunner().invoke(main, ["data", "download", "lastfm", "--root", str(tmp_path)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert bad.output.strip().splitlines()[-1].startswith("Error: lastfm/ratings.txt: SHA-256")


def test_every_registered_dataset_has_pinned_files():
    from ssgraphrec.data import DATASETS

    for name, spec in DATASETS.items():
        if spec.path is None:
            continue
        for folder in dl.folders_of(name):
            files = dl.folder_files(folder)
            assert files and all(len(f.sha256) == 64 and f.size > 0 for f in files), folder


def test_download_then_train_on_lastfm_from_a_local_mirror(data_root, tmp_path):
    """The whole path of a fresh machine: fetch lastfm from a mirror (here: a local
    server over the shared data folder), then train on it with no other step."""
    files = {f"/lastfm/{name}": (data_root / "lastfm" / name).read_bytes()
             for name in ("ratings.txt", "trusts.txt")}
    srv = Server(files)
    try:
        root = tmp_path / "data"
        fetched = CliRunner().invoke(main, ["data", "download", "lastfm", "--root", str(root),
                                            "--mirror", srv.url, "--no-progress"])
        assert fetched.exit_code == 0, fetched.output
        trained = CliRunner().invoke(main, [
            "train", "--method", "lightgcn", "--dataset", "lastfm", "--data-root", str(root),
            "--epochs", "2", "--no-progress", "--out", str(tmp_path / "run"),
            "--set", "emb_dim=16"])
        assert trained.exit_code == 0, trained.output
        assert "test metrics of lightgcn on lastfm" in trained.output
    finally:
        srv.close()


def test_lastfm_80_20_is_derived_from_lastfm_to_the_pinned_bytes(data_root, tmp_path):
    (tmp_path / "lastfm").mkdir()
    (tmp_path / "lastfm" / "ratings.txt").write_bytes(
        (data_root / "lastfm" / "ratings.txt").read_bytes())
    dl.derive_lastfm_80_20(tmp_path)
    assert dl.status("lastfm/split-80-20", tmp_path) == "present"


def test_an_absent_dataset_says_which_command_fetches_it(tmp_path):
    result = CliRunner().invoke(main, ["train", "--method", "lightgcn", "--dataset", "gowalla",
                                       "--data-root", str(tmp_path), "--epochs", "1"])
    assert result.exit_code == 1
    assert "ssgraphrec data download gowalla" in result.output


def test_paths_are_joined_as_the_data_root_lays_them_out():
    url = dl.folder_files("lastfm")[0].url
    assert url.startswith("https://raw.githubusercontent.com/Coder-Yu/QRec/")
    assert Path(url).name == "ratings.txt"


def test_a_root_that_cannot_be_written_is_one_clear_error(server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SSGraphRecError, match="cannot write the data folder .*pick another --root"):
        get(server, blocker)
