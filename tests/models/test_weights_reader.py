"""The torch weight readers on crafted files: every malformed tensor is refused by name.

Regression tests for the out-of-bounds reads of the legacy reader (sizes or strides beyond
the storage, negative strides, offsets past the storage), bare KeyError / ValueError on a
missing storage key or a negative size, and the zip format. No torch and no TensorFlow:
the files are written with :mod:`imaging_tl.models.weights.torch_writer`.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.integrity import sha256_of, verify_sha256
from imaging_tl.models.weights.torch_pickle import UnsafePickleError, read_legacy_state_dict
from imaging_tl.models.weights.torch_writer import (
    StorageSpec,
    TensorSpec,
    write_torch_file,
    write_torch_state_dict,
)
from imaging_tl.models.weights.torch_zip import read_torch_state_dict, read_zip_state_dict

FORMATS = ["zip", "legacy"]


def _one_tensor(tmp_path, fmt, offset=0, size=(2, 3), stride=(3, 1), n=6, numel=None):
    storages = {"0": StorageSpec("FloatStorage", np.arange(n, dtype=np.float32), numel)}
    return write_torch_file(tmp_path / f"w.{fmt}.pt",
                            {"w": TensorSpec("0", offset, size, stride)}, storages, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_formats_round_trip_bit_identically(tmp_path, fmt):
    rng = np.random.default_rng(0)
    arrays = {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              "bn.num_batches_tracked": np.int64(9), "half": np.float16([1.5, -2]),
              "empty": np.zeros((0, 3), np.float32), "mask": np.array([True, False])}
    sd = read_torch_state_dict(write_torch_state_dict(tmp_path / "w.pt", arrays, fmt))
    assert list(sd) == list(arrays)
    for k, v in arrays.items():
        assert sd[k].dtype == np.asarray(v).dtype and sd[k].shape == np.shape(v)
        np.testing.assert_array_equal(sd[k], v)


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_inside_the_storage_are_read(tmp_path, fmt):
    # a transposed view and a broadcast (stride 0) view are legal torch tensors
    sd = read_torch_state_dict(_one_tensor(tmp_path, fmt, offset=1, size=(2, 2), stride=(1, 2)))
    assert sd["w"].tolist() == [[1.0, 3.0], [2.0, 4.0]]
    sd = read_torch_state_dict(_one_tensor(tmp_path, fmt, offset=5, size=(3,), stride=(0,)))
    assert sd["w"].tolist() == [5.0, 5.0, 5.0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("kw", "message"), [
    ({"size": (2, 4), "stride": (4, 1)}, "reaches element 7 of storage 0, which has 6"),
    ({"stride": (4, 1)}, "reaches element 6"),                                  # stride too big
    ({"size": (100000, 100000), "stride": (100000, 1)}, "reaches element"),     # ~40 GB view
    ({"stride": (3, -1)}, "negative or non-integer"),                           # negative stride
    ({"size": (-1, 3)}, "negative or non-integer"),                             # negative size
    ({"offset": 7, "size": (0,), "stride": (1,)}, "offset 7 is past the end"),  # offset past
    ({"offset": 1}, "reaches element 6"),                                       # offset + extent
    ({"offset": -1}, "offset -1 is not"),
    ({"size": (2, 3), "stride": (3,)}, "differ in length"),
    ({"size": (2.0, 3), "stride": (3, 1)}, "non-integer"),
    ({"size": 6, "stride": (1,)}, "not a tuple"),
])
def test_out_of_bounds_tensors_are_refused_before_any_array(tmp_path, fmt, kw, message):
    with pytest.raises(WeightsFileError, match=message):
        read_torch_state_dict(_one_tensor(tmp_path, fmt, **kw))


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_count_must_match_the_data(tmp_path, fmt):
    # the persistent id claims 60 elements, the file holds 6: no read past the data
    with pytest.raises(WeightsFileError, match="storage 0"):
        read_torch_state_dict(_one_tensor(tmp_path, fmt, size=(6, 10), stride=(10, 1),
                                          numel=60))


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_storage_key_is_a_weights_file_error(tmp_path, fmt):
    storages = {"0": StorageSpec("FloatStorage", np.zeros(6, np.float32), written=False)}
    path = write_torch_file(tmp_path / "w.pt", {"w": TensorSpec("0", 0, (6,), (1,))},
                            storages, fmt)
    with pytest.raises(WeightsFileError, match="missing storage key"):
        read_torch_state_dict(path)


def test_legacy_negative_storage_count_and_truncation(tmp_path):
    path = _one_tensor(tmp_path, "legacy")
    data = path.read_bytes()
    count = (6).to_bytes(8, "little")
    at = data.rindex(count)
    path.write_bytes(data[:at] + (-6).to_bytes(8, "little", signed=True) + data[at + 8:])
    with pytest.raises(WeightsFileError, match="negative element count"):
        read_legacy_state_dict(path)
    path.write_bytes(data[:-4])
    with pytest.raises(WeightsFileError, match="truncated inside storage 0"):
        read_legacy_state_dict(path)


def test_zip_without_data_pkl_compressed_members_and_wrong_lengths(tmp_path):
    empty = tmp_path / "other.pt"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("archive/readme.txt", "hello")
    with pytest.raises(WeightsFileError, match="no data.pkl"):
        read_torch_state_dict(empty)
    good = _one_tensor(tmp_path, "zip")
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(deflated, "w",
                                                       zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, src.read(item))
    with pytest.raises(WeightsFileError, match="compressed"):
        read_torch_state_dict(deflated)
    short = tmp_path / "short.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(short, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            dst.writestr(item.filename, body[:-4] if item.filename.endswith("data/0") else body)
    with pytest.raises(WeightsFileError, match="truncated or altered"):
        read_torch_state_dict(short)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(WeightsFileError):
        read_torch_state_dict(cut)


def test_zip_refuses_code_and_whole_pickled_models(tmp_path):
    path = tmp_path / "model.pt"
    body = (b"\x80\x02ctorchxrayvision.models\nDenseNet\nq\x00)\x81q\x01.")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", body)
    with pytest.raises(UnsafePickleError, match="torchxrayvision.models.DenseNet"):
        read_zip_state_dict(path)


def test_legacy_reader_names_the_zip_format(tmp_path):
    path = write_torch_state_dict(tmp_path / "w.pt", {"w": np.zeros(2, np.float32)})
    with pytest.raises(WeightsFileError, match="zip-format PyTorch checkpoint"):
        read_legacy_state_dict(path)


@pytest.mark.parametrize("junk", [b"", b"\x00not a pickle", b"\x80\x02K\x01.", b"PK\x03\x04x"])
def test_garbage_is_a_weights_file_error(tmp_path, junk):
    path = tmp_path / "junk.pt"
    path.write_bytes(junk)
    with pytest.raises(WeightsFileError):
        read_torch_state_dict(path)


def test_unknown_storage_type_is_refused(tmp_path):
    path = write_torch_file(tmp_path / "w.pt", {"w": TensorSpec("0", 0, (2,), (1,))},
                            {"0": StorageSpec("ComplexFloatStorage", np.zeros(2, np.float32))})
    with pytest.raises(UnsafePickleError, match="ComplexFloatStorage"):
        read_torch_state_dict(path)


def test_bfloat16_is_widened_to_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16)
    path = write_torch_file(tmp_path / "w.pt", {"w": TensorSpec("0", 0, (3,), (1,))},
                            {"0": StorageSpec("BFloat16Storage", raw)})
    np.testing.assert_array_equal(read_torch_state_dict(path)["w"], values)


def test_full_sha256_is_compared(tmp_path):
    path = write_torch_state_dict(tmp_path / "w.pt", {"w": np.zeros(2, np.float32)})
    digest = sha256_of(path)
    assert read_torch_state_dict(path, sha256=digest)["w"].shape == (2,)
    # same first 8 hex, different tail: a prefix match is not a match
    almost = digest[:8] + ("0" if digest[8] != "0" else "1") + digest[9:]
    with pytest.raises(WeightsFileError, match=f"expected {almost}, actual {digest}"):
        read_torch_state_dict(path, sha256=almost)
    with pytest.raises(ValueError, match="64 hex digits"):
        verify_sha256(path, digest[:8])
    hub = tmp_path / f"w-{digest[:8]}.pt"
    hub.write_bytes(path.read_bytes())
    assert "w" in read_torch_state_dict(hub)  # the hub name convention: prefix of the digest
    wrong = tmp_path / "w-00000000.pt"
    wrong.write_bytes(path.read_bytes())
    with pytest.raises(WeightsFileError, match="prefix its torch hub name carries"):
        read_torch_state_dict(wrong)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutants_are_read_or_refused_by_name(tmp_path, fmt):
    # byte flips and truncations of a valid file: a state dict or WeightsFileError, never
    # another exception (the fuzz invariant for weight files)
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(5),
              "c": np.float16([1, 2])}
    source = write_torch_state_dict(tmp_path / "s.pt", arrays, fmt).read_bytes()
    rng = np.random.default_rng(22)
    path = tmp_path / "m.pt"
    for _ in range(300):
        data = bytearray(source)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        if rng.random() < 0.2:
            data = data[: int(rng.integers(len(data)))]
        path.write_bytes(bytes(data))
        try:
            out = read_torch_state_dict(path)
        except WeightsFileError:
            continue
        assert isinstance(out, dict)
