"""Series grouping, slice order along the normal, and the per-series checks."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from imaging_tl.io.census import run_census
from imaging_tl.io.series import SliceHeader, group_series, order_series, scan_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _write(path: Path, uid: str, position, orientation=AXIAL, number=None, size=8,
           frames=None) -> Path:
    """A tiny CT slice (or a multi-frame object with per-frame positions)."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Modality, ds.SeriesInstanceUID, ds.PatientID = "CT", uid, "P1"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    n = 1
    if frames is not None:
        n = len(frames)
        ds.NumberOfFrames = n
        items = []
        for pos in frames:
            group, plane = pydicom.Dataset(), pydicom.Dataset()
            plane.ImagePositionPatient = list(pos)
            group.PlanePositionSequence = [plane]
            items.append(group)
        ds.PerFrameFunctionalGroupsSequence = items
        shared, ori = pydicom.Dataset(), pydicom.Dataset()
        ori.ImageOrientationPatient = list(orientation)
        shared.PlaneOrientationSequence = [ori]
        ds.SharedFunctionalGroupsSequence = [shared]
    else:
        if position is not None:
            ds.ImagePositionPatient = list(position)
        if orientation is not None:
            ds.ImageOrientationPatient = list(orientation)
    if number is not None:
        ds.InstanceNumber = number
    ds.PixelData = np.zeros((n, size, size), np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _oblique() -> tuple[tuple[float, ...], np.ndarray, np.ndarray]:
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(0.5), np.sin(0.5)])  # tilted 29 degrees about x
    return (*row, *col), np.cross(row, col), col


def test_oblique_shuffled_files_come_back_in_geometric_order(tmp_path):
    orientation, normal, col = _oblique()
    uid = generate_uid()
    origin = np.array([-20.0, 30.0, 100.0])
    # 2.5 mm apart along the normal, shifted in-plane so that z falls as the slices advance:
    # sorting by z (or by the misleading InstanceNumber) would get the order wrong
    files = [_write(tmp_path / f"f{i:02d}.dcm", uid,
                    origin + 2.5 * k * normal - 6.0 * k * col, orientation, number=99 - k)
             for i, k in enumerate(random.Random(0).sample(range(10), 10))]
    expected = sorted(files, key=lambda f: float(np.dot(np.asarray(
        pydicom.dcmread(f).ImagePositionPatient, float), normal)))
    series, failed = scan_series(random.Random(1).sample(files, len(files)))
    assert failed == {} and len(series) == 1
    one = series[0]
    assert one.order_by == "position" and not one.flagged
    assert [s.path for s in one.slices] == [str(f) for f in expected]
    z = [s.position[2] for s in one.slices]
    assert z == sorted(z, reverse=True)  # not the z order
    assert abs(one.spacing - 2.5) < 1e-6


def test_position_beats_z_for_an_oblique_stack():
    # Slices 1 mm apart along the normal but moving backwards in z: only the projection
    # orders them right.
    ori = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # coronal: normal = row x col = (0, 1, 0)
    s = [SliceHeader(f"{i}.dcm", None, "u", (0.0, float(i), -5.0 * i), ori, None)
         for i in (3, 0, 2, 1)]
    assert [x.path for x in order_series(s).slices] == ["0.dcm", "1.dcm", "2.dcm", "3.dcm"]


def test_gaps_duplicates_sizes_orientations_and_single_slices_are_reported(tmp_path):
    z_gap = [0.0, 2.0, 4.0, 10.0, 12.0]
    z_dup = [0.0, 2.0, 2.0, 4.0]
    made, uids = {}, []
    for name, zs in (("gap", z_gap), ("dup", z_dup)):
        uid = generate_uid()
        uids.append(uid)
        made[name] = [_write(tmp_path / f"{name}{i}.dcm", uid, (0, 0, z))
                      for i, z in enumerate(zs)]
    uid = generate_uid()
    uids.append(uid)
    _write(tmp_path / "mix0.dcm", uid, (0, 0, 0))
    _write(tmp_path / "mix1.dcm", uid, (0, 0, 1), size=6)
    _write(tmp_path / "mix2.dcm", uid, (0, 0, 2), orientation=_oblique()[0])
    _write(tmp_path / "one.dcm", generate_uid(), (0, 0, 0))
    uid = generate_uid()
    good = [_write(tmp_path / f"ok{i}.dcm", uid, (0, 0, 3.0 * i)) for i in range(3)]
    (tmp_path / "broken.dcm").write_bytes(good[0].read_bytes()[:300])  # truncated
    result = run_census(tmp_path, tmp_path / "census.csv", progress=False)
    by_start = {Path(s.slices[0].path).stem: s for s in result.series}
    assert "spacing not uniform" in by_start["gap0"].message()
    assert "about 2 missing slice(s)" in by_start["gap0"].message()
    assert "duplicated positions: 1 slice(s)" in by_start["dup0"].message()
    mixed = by_start["mix0"].message()
    assert "mixed sizes: 8x8 (2), 6x6 (1)" in mixed and "mixed orientations" in mixed
    assert "a single slice" in by_start["one"].message()
    assert not by_start["ok0"].flagged
    text = result.format()
    assert "series flagged: 4 of 5" in text and "gap0.dcm" in text
    # series, flagged ones above all, are named by their first file, never by UID
    assert not [u for u in uids if u in text]
    rows = {r["path"]: r for r in result.rows}
    assert [rows[g.name]["series_slice"] for g in good] == [0, 1, 2]
    assert rows["ok1.dcm"]["series_problem"] in (None, "")
    assert rows["gap3.dcm"]["series_problem"].startswith("spacing not uniform")
    assert rows["broken.dcm"]["status"] != "ok"  # the batch went on
    header = (tmp_path / "census.csv").read_text().splitlines()[0]
    assert header.endswith("series_slice,slice_order,series_problem")


def test_instance_number_is_the_fallback_and_the_census_says_so(tmp_path):
    uid = generate_uid()
    for i, n in enumerate((3, 1, 2)):
        _write(tmp_path / f"s{i}.dcm", uid, None, orientation=None, number=n)
    result = run_census(tmp_path, None, progress=False)
    (one,) = result.series
    assert one.order_by == "instance_number" and not one.flagged
    assert [Path(s.path).name for s in one.slices] == ["s1.dcm", "s2.dcm", "s0.dcm"]
    assert {r["slice_order"] for r in result.rows} == {"instance_number"}
    assert "ordered without ImagePositionPatient: 1" in result.format()


def test_an_enhanced_multi_frame_object_is_one_series_of_its_frames(tmp_path):
    path = _write(tmp_path / "mf.dcm", generate_uid(), None,
                  frames=[(0, 0, 4.0), (0, 0, 0.0), (0, 0, 2.0)])
    (one,) = scan_series([path])[0]
    assert [s.frame for s in one.slices] == [1, 2, 0] and one.spacing == 2.0


def test_radiographs_are_not_series_problems():
    cr = [SliceHeader(f"{i}.dcm", None, f"u{i}", None, None, 1) for i in range(3)]
    assert not any(s.flagged for s in group_series(cr))
