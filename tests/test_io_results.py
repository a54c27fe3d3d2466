"""Result files (issue 10): no overwrite without consent, untrusted files checked before decoding.

- `check_output`/`write_result`/`atomic_path` never replace an existing output without
  ``overwrite``, never delete a folder that cse did not write (a store with a file of the
  user's in it included), refuse symbolic links, FIFOs, wrong kinds, and inputs.
- `open_result` refuses codecs, filters, dtypes and links that cse does not write before a
  single chunk is decoded, whatever NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE says.
- NUL characters in strings round-trip through netCDF (escape) and Zarr.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import CSEInputError
from cse.io import (
    RESULT_MARKER,
    atomic_path,
    check_output,
    escape_nul,
    is_package_result,
    open_result,
    result_attrs,
    set_result_attrs,
    unescape_nul,
    write_result,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def small_result(strings=("a", "b", "c")) -> xr.Dataset:
    rng = np.random.default_rng(0)
    n = len(strings)
    return xr.Dataset(
        {"cse": (("token", "layer"), rng.random((n, 4))), "surprisal": ("token", rng.random(n))},
        coords={"token_str": ("token", np.array(list(strings), dtype=object)), "layer": np.arange(4),
                "is_special": ("token", np.zeros(n, dtype=bool)), "text": ("token", np.zeros(n, dtype=np.int64))},
        attrs={"model": "test"},
    )


def _message(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


# --------------------------------------------------------------------------- no overwrite without consent


@pytest.mark.parametrize("name", ["keep.nc", "photos.zarr", "figure.png"])
def test_a_folder_cse_did_not_write_survives_with_and_without_overwrite(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(CSEInputError) as error:
            check_output(folder, overwrite=overwrite, result=name != "figure.png")
        assert "never replace" in _message(error) or "is a folder" in _message(error)
    if name.endswith((".nc", ".zarr")):
        with pytest.raises(CSEInputError):
            write_result(small_result(), folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "precious"


def test_a_result_store_with_a_file_of_the_user_is_not_a_result(tmp_path):
    store = tmp_path / "r.zarr"
    write_result(small_result(), store)
    assert is_package_result(store)
    write_result(small_result(), store, overwrite=True)  # a store of cse: replaced with consent
    (store / "notes.txt").write_text("mine")
    assert not is_package_result(store)
    with pytest.raises(CSEInputError, match="folder that cse did not write"):
        write_result(small_result(), store, overwrite=True)
    assert (store / "notes.txt").read_text() == "mine"


def test_existing_files_need_overwrite(tmp_path):
    path = tmp_path / "r.nc"
    write_result(small_result(), path)
    with pytest.raises(CSEInputError, match="exists; pass overwrite=True"):
        write_result(small_result(), path)
    write_result(small_result(["x", "y", "z"]), path, overwrite=True)
    assert open_result(path)["token_str"].values.tolist() == ["x", "y", "z"]


def test_zarr_path_that_is_a_file_and_nc_path_that_is_a_folder_are_refused(tmp_path):
    file_zarr = tmp_path / "r.zarr"
    file_zarr.write_text("not a store")
    folder_nc = tmp_path / "r.nc"
    write_result(small_result(), tmp_path / "store.zarr")
    os.replace(tmp_path / "store.zarr", folder_nc)  # a result store, named .nc
    for path, kind in ((file_zarr, "is a regular file, not a Zarr store"), (folder_nc, "is a folder, not a file")):
        with pytest.raises(CSEInputError) as error:
            check_output(path, overwrite=True)
        assert kind in _message(error)
    assert file_zarr.read_text() == "not a store"


def test_symbolic_links_are_never_written_through(tmp_path):
    target = tmp_path / "target.nc"
    write_result(small_result(), target)
    before = target.read_bytes()
    link = tmp_path / "link.nc"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.nc"
    dangling.symlink_to(tmp_path / "nowhere.nc")
    for path in (link, dangling):
        with pytest.raises(CSEInputError, match="is a symbolic link"):
            write_result(small_result(), path, overwrite=True)
    assert target.read_bytes() == before and not (tmp_path / "nowhere.nc").exists()
    assert not is_package_result(link)


def test_output_may_not_be_an_input(tmp_path):
    source = tmp_path / "texts.nc"
    source.write_text("my texts")
    hard = tmp_path / "hard.nc"
    os.link(source, hard)
    os.chdir(tmp_path)
    for output in (source, Path("texts.nc"), hard, tmp_path / "." / "texts.nc"):
        with pytest.raises(CSEInputError, match="is an input of this command"):
            check_output(output, inputs=[source], overwrite=True)
    store = tmp_path / "r.zarr"
    write_result(small_result(), store)
    with pytest.raises(CSEInputError, match="is an input"):
        check_output(store, inputs=[store], overwrite=True)
    with pytest.raises(CSEInputError, match="is an input"):
        check_output(store / "stats.nc", inputs=[store], overwrite=True)
    assert source.read_text() == "my texts"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_neither_outputs_nor_results(tmp_path):
    fifo = tmp_path / "r.nc"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(CSEInputError, match="is a FIFO"):
        check_output(fifo, overwrite=True)
    with pytest.raises(CSEInputError, match="is a FIFO"):
        open_result(fifo)
    with pytest.raises(CSEInputError, match="is a FIFO"):
        result_attrs(fifo)
    assert not is_package_result(fifo)
    assert time.perf_counter() - start < 5


def test_output_folder_must_exist_and_be_writable(tmp_path, monkeypatch):
    with pytest.raises(CSEInputError, match="does not exist; create it first"):
        check_output(tmp_path / "missing" / "r.nc")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(CSEInputError, match="is not writable"):
        check_output(tmp_path / "r.nc")


def test_atomic_path_leaves_the_target_untouched_on_error(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target, overwrite=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_recognising_a_result_reads_no_data(tmp_path):
    big = tmp_path / "big.nc"
    with open(big, "wb") as handle:  # 2 GiB sparse file that is not HDF5
        handle.seek(2**31)
        handle.write(b"\0")
    start = time.perf_counter()
    assert not is_package_result(big)
    path = tmp_path / "r.nc"
    write_result(small_result(), path)
    assert is_package_result(path)
    foreign = tmp_path / "foreign.nc"
    small_result().to_netcdf(foreign, engine="h5netcdf")
    assert not is_package_result(foreign)
    assert time.perf_counter() - start < 5


# --------------------------------------------------------------------------- untrusted result files


class _Payload:
    """Unpickling it creates a file: proof that a payload ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_store(path: Path, marker: Path) -> bytes:
    """A hand-made Zarr (format 2) store whose `cse` array is pickled (numcodecs' pickle filter)."""
    (path / "cse").mkdir(parents=True)
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (path / ".zattrs").write_text(json.dumps({RESULT_MARKER: "0.1.0"}))
    (path / "cse/.zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [1], "chunks": [1], "dtype": "|O", "compressor": None, "fill_value": None,
        "filters": [{"id": "pickle", "protocol": 5}], "order": "C", "dimension_separator": ".",
    }))
    (path / "cse/.zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["token"]}))
    chunk = pickle.dumps(_Payload(marker), protocol=5)
    (path / "cse/0").write_bytes(chunk)
    return chunk


def test_a_pickle_store_is_refused_before_anything_is_unpickled(tmp_path, monkeypatch):
    import numcodecs
    import numcodecs.pickles

    marker = tmp_path / "PAYLOAD_RAN"
    store = tmp_path / "evil.zarr"
    chunk = pickle_store(store, marker)
    # The payload is live: numcodecs' pickle codec, allowed as the environment variable allows it, runs it.
    monkeypatch.setattr(numcodecs.pickles, "ALLOW_UNSAFE_PICKLE_DECODE", True)
    monkeypatch.setenv("NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE", "1")
    numcodecs.Pickle().decode(chunk)
    assert marker.exists()
    marker.unlink()
    calls = []
    real_decode = numcodecs.pickles.Pickle.decode
    monkeypatch.setattr(numcodecs.pickles.Pickle, "decode", lambda self, *a, **k: calls.append(1) or real_decode(self, *a, **k))
    for read in (open_result, result_attrs, lambda p: open_result(p, chunks={})):
        with pytest.raises(CSEInputError) as error:
            read(store)
        assert "refused: array 'cse' uses the codec 'pickle'" in _message(error)
    assert not marker.exists() and not calls


def _rewrite_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("edit, refused", [
    (lambda d: d["codecs"].append({"name": "numcodecs.pickle", "configuration": {}}), "codec 'numcodecs.pickle'"),
    (lambda d: d.update(codecs=[{"name": "sharding_indexed", "configuration": {}}]), "codec 'sharding_indexed'"),
    (lambda d: d.update(data_type="complex128"), "data type 'complex128'"),
    (lambda d: d.update(data_type={"name": "numpy.datetime64", "configuration": {}}), "data type"),
    (lambda d: d.update(storage_transformers=[{"name": "x"}]), "storage transformers"),
])
def test_zarr_v3_metadata_outside_the_allow_list_is_refused(tmp_path, edit, refused):
    store = tmp_path / "r.zarr"
    write_result(small_result(), store)
    _rewrite_json(store / "cse" / "zarr.json", edit)
    with pytest.raises(CSEInputError) as error:
        open_result(store)
    assert refused in _message(error)
    # The consolidated copy in the root document is checked as well.
    store2 = tmp_path / "r2.zarr"
    write_result(small_result(), store2)
    _rewrite_json(store2 / "zarr.json", lambda d: edit(d["consolidated_metadata"]["metadata"]["cse"]))
    with pytest.raises(CSEInputError, match="refused"):
        open_result(store2)


def test_links_and_special_files_inside_a_store_are_refused(tmp_path):
    store = tmp_path / "r.zarr"
    write_result(small_result(), store)
    chunk = next(p for p in (store / "cse").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    chunk.symlink_to("/etc/hostname")
    with pytest.raises(CSEInputError, match="is a symbolic link"):
        open_result(store)
    if hasattr(os, "mkfifo"):
        chunk.unlink()
        os.mkfifo(chunk)
        with pytest.raises(CSEInputError, match="is a FIFO"):
            open_result(store)


def test_deeply_nested_metadata_is_one_line(tmp_path):
    store = tmp_path / "r.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CSEInputError) as error:
        open_result(store)
    assert "not valid Zarr metadata" in _message(error)


def _add_dataset(path: Path, name: str, make) -> None:
    with h5py.File(path, "a") as handle:
        make(handle, name)


def _unknown_filter(handle, name):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((3,))
    dcpl.set_filter(32015, h5py.h5z.FLAG_OPTIONAL, (3,))  # zstd: a plugin, not built into HDF5
    space = h5py.h5s.create_simple((3,))
    h5py.Dataset(h5py.h5d.create(handle.id, name.encode(), h5py.h5t.NATIVE_DOUBLE, space, dcpl=dcpl))[...] = 1.0


@pytest.mark.parametrize("make, refused", [
    (_unknown_filter, "uses the HDF5 filter 32015"),
    (lambda h, n: h.create_dataset(n, data=np.ones(3, dtype=np.complex128)), "has dtype complex128"),
    (lambda h, n: h.create_dataset(n, data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])), "has dtype"),
    (lambda h, n: h.__setitem__(n, h5py.ExternalLink("/etc/other.h5", "/data")), "is a link to another file"),
    (lambda h, n: h.create_dataset(n, shape=(3,), dtype="f8", external=[(str(Path(h.filename).parent / "raw.bin"),
                                                                          0, h5py.h5f.UNLIMITED)]), "external files"),
    (lambda h, n: h.create_dataset(n, shape=(3,), dtype=h5py.vlen_dtype(np.int32)), "has dtype"),
])
def test_hdf5_outside_the_allow_list_is_refused(tmp_path, make, refused):
    path = tmp_path / "r.nc"
    write_result(small_result(), path)
    (tmp_path / "raw.bin").write_bytes(b"\0" * 24)
    _add_dataset(path, "evil", make)
    with pytest.raises(CSEInputError) as error:
        open_result(path)
    assert f"refused: " in _message(error) and refused in _message(error)


def test_foreign_and_truncated_files_are_one_line(tmp_path):
    for name, data in (("text.nc", b"just text"), ("empty.nc", b""), ("trunc.nc", b"\x89HDF\r\n\x1a\n" + b"\0" * 40)):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CSEInputError, match="not a readable result file"):
            open_result(path)
    with pytest.raises(CSEInputError, match="does not exist"):
        open_result(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(CSEInputError, match="not a Zarr store"):
        open_result(tmp_path / "empty.zarr")


def test_what_cse_writes_passes_the_allow_list(tmp_path):
    ds = small_result()
    ds["flag"] = ("token", np.array([True, False, True]))
    ds["label"] = ("token", np.array(["a", "bb", "ccc"]))  # fixed-width unicode
    ds["count"] = ("layer", np.arange(4, dtype=np.int32))
    for name in ("r.nc", "r.zarr"):
        write_result(ds, tmp_path / name)
        xr.testing.assert_identical(open_result(tmp_path / name).load(), ds.assign_attrs(
            {RESULT_MARKER: open_result(tmp_path / name).attrs[RESULT_MARKER]}))


# --------------------------------------------------------------------------- NUL and attributes


_strings = st.lists(st.text(alphabet=st.sampled_from(["\x00", "\u2400", "0", "a", "é", "\U0001f600"]), max_size=8),
                    min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(values=_strings)
def test_nul_escape_round_trips_exactly(values):
    escaped = escape_nul(np.array(values, dtype=object))
    assert not any("\x00" in v for v in escaped)
    assert unescape_nul(escaped).tolist() == values


@SETTINGS
@given(values=_strings)
@pytest.mark.slow
def test_nul_round_trips_through_netcdf_and_zarr(tmp_path, values):
    ds = small_result(values)
    for name in ("n.nc", "n.zarr"):
        path = tmp_path / name
        write_result(ds, path, overwrite=True)
        with open_result(path) as back:
            assert back["token_str"].values.tolist() == values
            assert "cse_nul_escape" not in back["token_str"].attrs
        with open_result(path, chunks={}) as lazy:
            assert lazy["token_str"].values.tolist() == values


def test_result_attrs_and_set_result_attrs(tmp_path):
    for name in ("r.nc", "r.zarr"):
        path = tmp_path / name
        write_result(small_result(), path)
        assert result_attrs(path)["model"] == "test"
        set_result_attrs(path, {"study_key": '{"a": 1}', "n": 3, "flag": True, "model": None})
        attrs = result_attrs(path)
        assert attrs["study_key"] == '{"a": 1}' and int(attrs["n"]) == 3 and int(attrs["flag"]) == 1
        assert "model" not in attrs
        with open_result(path) as ds:
            assert ds.attrs["study_key"] == '{"a": 1}' and "model" not in ds.attrs
            np.testing.assert_array_equal(ds["cse"].values, small_result()["cse"].values)
        for bad in ({"a/b": 1}, {"x": object()}, {"x": "nul\x00"}, {RESULT_MARKER: None}):
            with pytest.raises(CSEInputError):
                set_result_attrs(path, bad)
    foreign = tmp_path / "foreign.nc"
    small_result().to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(CSEInputError, match="not a result written by cse"):
        set_result_attrs(foreign, {"study_key": "x"})


# --------------------------------------------------------------------------- codecs decoded by cse (issue 17)


def _codec_variants():
    from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec

    import numcodecs

    return {
        "v3-zstd": (3, [ZstdCodec()]), "v3-gzip": (3, [GzipCodec()]), "v3-blosc": (3, [BloscCodec()]),
        "v3-zstd-crc32c": (3, [ZstdCodec(), Crc32cCodec()]), "v3-none": (3, None),
        "v2-blosc": (2, [numcodecs.Blosc()]), "v2-zstd": (2, [numcodecs.Zstd()]), "v2-zlib": (2, [numcodecs.Zlib()]),
        "v2-gzip": (2, [numcodecs.GZip()]), "v2-lz4": (2, [numcodecs.LZ4()]), "v2-bz2": (2, [numcodecs.BZ2()]),
        "v2-lzma": (2, [numcodecs.LZMA()]), "v2-none": (2, None),
    }  # fmt: skip


@pytest.mark.parametrize("variant", list(_codec_variants()))
def test_stores_of_every_allowed_codec_open_as_zarr_opens_them(tmp_path, variant):
    fmt, compressors = _codec_variants()[variant]
    ds = small_result(tuple(f"w{k}" for k in range(23))).assign(
        fixed=("token", np.array([f"f{k}" for k in range(23)], dtype="<U3")),
        flag=("token", np.arange(23) % 3 == 0)).assign_attrs({RESULT_MARKER: "test"})
    encoding = {name: {"compressors": compressors, "chunks": (7,) + ds[name].shape[1:]} for name in ds.data_vars}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "r.zarr", zarr_format=fmt, encoding=encoding)
        expected = xr.open_zarr(tmp_path / "r.zarr").load()
    xr.testing.assert_identical(open_result(tmp_path / "r.zarr"), expected)
    xr.testing.assert_identical(open_result(tmp_path / "r.zarr", chunks={}).load(), expected)


def test_the_memory_limit_is_settable_and_checked(tmp_path, monkeypatch):
    from cse.io.limits import MAX_BYTES_ENV, ResultLimits

    ds = xr.Dataset({"cse": (("token", "layer"), np.zeros((20_000, 4)))}, coords={"layer": np.arange(4)})
    ds["cse"].encoding["chunks"] = (20_000, 4)  # one chunk of 625 KiB
    write_result(ds, tmp_path / "r.zarr")
    assert open_result(tmp_path / "r.zarr")["cse"].shape == (20_000, 4)
    with pytest.raises(CSEInputError, match=r"variable 'cse' declares chunks of \(20000, 4\) float64 values "
                                            r"\(625\.0 KiB\), more than the 256\.0 KiB one chunk may decode to; "
                                            r"the limit is 2\.0 MiB \(max_bytes=\)"):
        open_result(tmp_path / "r.zarr", max_bytes=2 * 2**20)
    assert ResultLimits.resolve(2**30).chunk_bytes == 2**27
    monkeypatch.setenv(MAX_BYTES_ENV, "2M")
    with pytest.raises(CSEInputError, match=rf"\(625\.0 KiB\).*the limit is 2\.0 MiB \({MAX_BYTES_ENV}\)"):
        open_result(tmp_path / "r.zarr")
    monkeypatch.setenv(MAX_BYTES_ENV, "8G")
    assert ResultLimits.resolve().max_bytes == 8 * 2**30 and ResultLimits.resolve().source == MAX_BYTES_ENV
    for bad in ("lots", "12Q", "100"):
        monkeypatch.setenv(MAX_BYTES_ENV, bad)
        with pytest.raises(CSEInputError, match=MAX_BYTES_ENV):
            open_result(tmp_path / "r.zarr")
    monkeypatch.delenv(MAX_BYTES_ENV)
    with pytest.raises(TypeError, match="'max_bytes'"):
        open_result(tmp_path / "r.zarr", max_bytes=1.5)
    assert ResultLimits.resolve().source == "half the available memory"


def test_codec_bounds_come_from_headers_or_a_maximum_output_length():
    import gzip
    import zlib

    from numcodecs import zstd

    from cse.io.decoding import DecodeError, decode_chunk, inflate, zstd_bound

    two = zstd.compress(b"a" * 100, 3) + zstd.compress(b"b" * 5000, 3)
    assert zstd_bound(two) == 5100 and decode_chunk(two, [("zstd", {})], 5100) == b"a" * 100 + b"b" * 5000
    with pytest.raises(DecodeError, match="zstd frames that declare 5100 bytes, more than the limit of 5099"):
        decode_chunk(two, [("zstd", {})], 5099)
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"xyz"
    assert zstd_bound(skippable + two) == 5100
    with pytest.raises(DecodeError, match="truncated"):
        zstd_bound(two[:-3])
    members = gzip.compress(b"x" * 10) + gzip.compress(b"y" * 10) + b"\0\0"
    assert inflate(members, lambda: zlib.decompressobj(31), 20, "gzip", members=True) == b"x" * 10 + b"y" * 10
    with pytest.raises(DecodeError, match="inflates to more than the limit of 19 bytes"):
        inflate(members, lambda: zlib.decompressobj(31), 19, "gzip", members=True)
    with pytest.raises(DecodeError, match="bytes after the end of the zlib stream"):
        inflate(zlib.compress(b"z") + b"tail", zlib.decompressobj, 10, "zlib", members=False)
    with pytest.raises(DecodeError, match="crc32c checksum does not match"):
        decode_chunk(b"data\0\0\0\0", [("crc32c", None)], 100)
