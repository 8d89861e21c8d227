import pytest

from tests.helpers import shared
from tfaudio import datasets
from tfaudio.errors import TfaudioError


@pytest.fixture()
def online(monkeypatch, tmp_path):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "0")
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "remote.bin"
    src.write_bytes(b"payload" * 1000)
    return src.as_uri(), src


def test_fetch_downloads_atomically_and_records_the_checksum(online, tmp_path):
    url, src = online
    dest = tmp_path / "dl" / "file.bin"
    assert datasets.fetch(url, dest, progress=False).read_bytes() == src.read_bytes()
    assert (tmp_path / "dl" / "file.bin.sha256").read_text().strip() == datasets.sha256_of(src)
    assert not list((tmp_path / "dl").glob(".*part"))


def test_fetch_rejects_a_wrong_checksum_and_leaves_nothing(online, tmp_path):
    url, _ = online
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(TfaudioError, match="checksum"):
        datasets.fetch(url, dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list((tmp_path / "dl").glob(".*part"))


def test_a_damaged_cached_copy_is_fetched_again(online, tmp_path):
    url, src = online
    dest = tmp_path / "dl" / "file.bin"
    datasets.fetch(url, dest, progress=False)
    dest.write_bytes(b"corrupted")
    assert datasets.fetch(url, dest, progress=False).read_bytes() == src.read_bytes()


def test_offline_refuses_to_download_and_says_where_to_put_a_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    with pytest.raises(TfaudioError, match="TFAUDIO_OFFLINE=1.*put a copy at"):
        datasets.fetch("https://example.invalid/x.zip", tmp_path / "x.zip")


def test_esc50_is_found_in_shared_without_download(monkeypatch, tmp_path):
    root = shared("data", "esc50-subset")
    monkeypatch.setenv("TFAUDIO_SHARED", str(root.parents[1]))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    assert datasets.esc50() == root
    monkeypatch.setenv("TFAUDIO_SHARED", str(tmp_path))
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TfaudioError, match="ESC-50 was not found"):
        datasets.esc50()
