"""``imaging_tl.pretrain``: the run directory, resume, bad input, collapse, and the run as
``model.source`` of a target task."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.pipeline import InputError
from imaging_tl.pretrain import CollapseError, pretrain


def test_run_directory_holds_what_run_json_and_history_promise(ssl_run):
    d = ssl_run.run_dir
    for f in ("config.yaml", "run.json", "history.csv", "model.keras", "contract.json",
              "data_index.csv", "plots/history.png"):
        assert (d / f).is_file(), f
    assert sorted(p.name for p in (d / "checkpoints").glob("epoch-*.npz")) == [
        "epoch-0001.npz", "epoch-0002.npz"]
    record = json.loads((d / "run.json").read_text())
    assert record["status"] == "finished" and record["seed"] == 0
    assert record["learning_rate"] == 0.1  # as given (null: 0.05 x batch / 256)
    assert len(record["data_manifest_sha256"]) == 64 and "keras" in record["versions"]
    assert [link["kind"] for link in record["chain"]] == ["imagenet", "run"]
    h = pd.read_csv(d / "history.csv")
    assert h["epoch"].tolist() == [1, 2] and np.isfinite(h["loss"]).all()
    assert (h["embedding_std_ratio"] > 0.3).all()  # a healthy run is far from collapse
    assert (h["feature_std_ratio"] > 0.3).all()  # in inference mode too
    # model.keras is the backbone of the best probed epoch (here the only one probed)
    assert record["kept"]["epoch"] == 2 and record["kept"]["rule"] == "best_probe"
    assert record["kept"]["stopped"] is None
    assert 0 <= record["kept"]["probe_auc_before"] <= 1
    # the probe ran every 2 epochs (and at the last), on held-out patients
    assert h["probe_auc"].notna().tolist() == [False, True]
    assert ((h["probe_auc"].dropna() >= 0) & (h["probe_auc"].dropna() <= 1)).all()
    # epoch 1 was the warm-up (projector and predictor only): the ImageNet backbone is
    # untouched there and trains from epoch 2
    from imaging_tl.models import build_transfer_model

    imagenet = build_transfer_model("efficientnet_lite0", input_size=32)
    start = imagenet.get_layer("stem_conv").get_weights()[0]
    kernels = []
    for epoch in (1, 2):
        with np.load(d / "checkpoints" / f"epoch-000{epoch}.npz") as z:
            kernels.append(z[next(k for k in z if k.endswith("stem_conv/kernel"))])
    np.testing.assert_array_equal(kernels[0], start)
    assert not np.array_equal(kernels[1], start)
    contract = json.loads((d / "contract.json").read_text())
    assert contract["task"] == "self_supervised" and contract["input_size"] == [32, 32]
    assert len(pd.read_csv(d / "data_index.csv")) == 24


def test_resume_continues_after_the_last_finished_epoch(ssl_config, ssl_run, tmp_path,
                                                       capsys):
    from imaging_tl.cli import main

    class Stop(Exception):
        pass

    def stop_after_first(epoch, row):
        if epoch == 0:
            raise Stop

    out = tmp_path / "cut"
    with pytest.raises(Stop):
        pretrain(copy.deepcopy(ssl_config), out=out, verbose=False, on_epoch=[stop_after_first])
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    first = (out / "checkpoints" / "epoch-0001.npz").stat().st_mtime_ns
    changed = tmp_path / "changed"  # the same run, as if its images had changed since
    shutil.copytree(out, changed)
    state = json.loads((changed / "checkpoints" / "state.json").read_text())
    state["data_manifest_sha256"] = "0" * 64
    (changed / "checkpoints" / "state.json").write_text(json.dumps(state))
    with pytest.raises(InputError, match="images changed since the run started"):
        pretrain(resume=changed, verbose=False)
    # resumed as a user types it (the function the imaging-tl script calls)
    assert main(["pretrain", "--resume", str(out), "--quiet"]) == 0
    assert "use it as model.source" in capsys.readouterr().out
    # epoch 1 was not repeated (its checkpoint is untouched), epoch 2 ran
    assert (out / "checkpoints" / "epoch-0001.npz").stat().st_mtime_ns == first
    a, b = pd.read_csv(out / "history.csv"), ssl_run.history
    assert a["epoch"].tolist() == [1, 2]
    # same seed: the resumed run's data order, views and weights follow the uninterrupted one
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-3, atol=1e-4)
    kept = json.loads((out / "run.json").read_text())["kept"]  # the start measured once
    assert kept["probe_auc_before"] == pytest.approx(ssl_run.record["kept"]["probe_auc_before"])
    with pytest.raises(InputError, match="has finished"):
        pretrain(resume=out, verbose=False)
    assert main(["pretrain", "--resume", str(out), "--quiet"]) == 2


def test_pretrained_run_is_a_model_source_and_a_target_trains_from_it(ssl_run, ssl_config,
                                                                        tmp_path):
    from imaging_tl.models import load_transfer_model
    from imaging_tl.pipeline import run
    from imaging_tl.synthetic import generate_dataset

    root = tmp_path / "target"
    generate_dataset(root, n_patients=22, images_per_patient=2, seed=11, size=64,
                     difficulty="easy")
    table = pd.read_csv(root / "labels.csv")
    table[table["patient_id"] > "SYN0012"].to_csv(root / "labels.csv", index=False)
    cfg = {"name": "target", "seed": 0, "workers": 1, "cache_dir": ssl_config["cache_dir"],
           "data": {"csv": str(root / "labels.csv"), "label_column": "label",
                    "group_column": "patient_id"},
           "task": {"positive": "nodule"}, "split": {"val": 0.25, "test": 0.25},
           "model": {"source": str(ssl_run.run_dir)},  # size and stages are inherited
           "train": {"batch_size": 8, "phases": [{"name": "head", "epochs": 1}]},
           "evaluate": {"bootstrap": 10, "gradcam": 0}}
    result = run(cfg, out=tmp_path / "run", verbose=False)
    chain = json.loads((result.run_dir / "run.json").read_text())["chain"]
    assert [link["kind"] for link in chain] == ["imagenet", "run", "run"]
    assert chain[1]["run_id"] == ssl_run.run_dir.name and chain[1]["task"] == "self_supervised"
    src = load_transfer_model(ssl_run.run_dir / "model.keras", compile=False)
    tgt = load_transfer_model(result.run_dir / "model.keras", compile=False)
    for name in ("stem_conv", "top_conv"):  # the backbone came from the pretraining
        for a, b in zip(src.get_layer(name).get_weights(), tgt.get_layer(name).get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    assert json.loads((result.run_dir / "contract.json").read_text())["input_size"] == [32, 32]
    # target data the pretraining saw is refused (every pretraining image counts as seen)
    cfg["data"]["csv"] = str(Path(ssl_config["data"]["folder"]) / "labels.csv")
    with pytest.raises(InputError, match="cross-task audit"):
        run(cfg, out=tmp_path / "leak", verbose=False)


def test_predict_refuses_a_self_supervised_backbone(ssl_run, ssl_images):
    from imaging_tl.pipeline import predict_files

    with pytest.raises(InputError, match="predicts nothing"):
        predict_files(ssl_run.run_dir, [str(next(ssl_images.rglob("*.png")))], engine="keras")


def test_bad_files_are_counted_too_few_images_refused_and_a_collapse_stops_the_run(
        ssl_config, ssl_images, tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    for i, src in enumerate(sorted(ssl_images.rglob("*.png"))[:5]):
        (folder / f"{i}_{src.name}").write_bytes(src.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    cfg = copy.deepcopy(ssl_config)
    cfg["data"] = {"folder": str(folder)}
    cfg["monitor"] = {}
    with pytest.raises(InputError) as info:
        pretrain(cfg, out=tmp_path / "few_run", verbose=False)
    msg = str(info.value)
    assert str(folder) in msg and "5 readable image(s) (1 unreadable, quarantined)" in msg
    assert "pretrain.batch_size" in msg
    # one batch fits: the bad file is left out and training goes on, here into a collapse
    # verdict (a threshold no spread embedding reaches), which stops the run clearly
    cfg["pretrain"].update(batch_size=4, collapse_ratio=0.999)
    with pytest.raises(CollapseError, match="collapsed at epoch 1.*collapse_ratio 0.999"):
        pretrain(cfg, out=tmp_path / "collapse", verbose=False)
    d = tmp_path / "collapse"
    record = json.loads((d / "run.json").read_text())
    assert record["status"] == "failed" and "CollapseError" in record["error"]
    assert (d / "checkpoints" / "epoch-0001.npz").is_file()
    assert len(pd.read_csv(d / "data_index.csv")) == 5  # the broken file is not in it
    # with a healthy probed epoch before a collapse, the run stops at the collapse and keeps
    # that epoch (the detector itself is tested on a really collapsed model in
    # test_pretrain_model.py; here the hook reports epoch 2's backbone features as dead)
    def dead_at_epoch_2(epoch, row):
        if epoch == 1:
            row["feature_std_ratio"] = 0.0

    cfg["monitor"] = {"csv": str(ssl_images / "labels.csv"), "every": 1, "test": 0.5}
    cfg["pretrain"].update(epochs=3, collapse_ratio=0.05)
    kept = pretrain(cfg, out=tmp_path / "kept", verbose=False, on_epoch=[dead_at_epoch_2])
    assert kept.record["status"] == "finished" and kept.history["epoch"].tolist() == [1, 2]
    assert kept.record["kept"]["epoch"] == 1 and kept.record["kept"]["rule"] == "best_probe"
    assert "pooled backbone features" in kept.record["kept"]["stopped"]
    assert "stopped early" in kept.summary()
    # model.keras holds epoch 1's backbone, not the last epoch's
    import keras

    saved = keras.saving.load_model(kept.run_dir / "model.keras", compile=False)
    with np.load(kept.run_dir / "checkpoints" / "epoch-0001.npz") as z:
        first = z[next(k for k in z if k.endswith("top_conv/kernel"))]
    np.testing.assert_array_equal(saved.get_layer("top_conv").get_weights()[0], first)


@pytest.mark.slow
@pytest.mark.parametrize("mode,cpus,precision", [("mirrored", 2, "none"),
                                                 ("none", 1, "mixed_bfloat16")])
def test_mirrored_and_mixed_precision_pretraining_run_and_save_float32(
        mode, cpus, precision, ssl_config, tmp_path):
    import subprocess
    import sys

    cfg = copy.deepcopy(ssl_config)
    cfg["monitor"]["csv"] = None
    cfg["pretrain"].update(distribute=mode, mixed_precision=precision, batch_size=4)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    worker = Path(__file__).with_name("pretrain_worker.py")
    done = subprocess.run([sys.executable, str(worker), str(tmp_path / "cfg.json"),
                           str(tmp_path / "run"), str(cpus)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["distribute"]["replicas"] == cpus
    assert result["distribute"]["mixed_precision"] == (
        "float32" if precision == "none" else precision)
    assert result["distribute"]["global_batch"] == 4 * cpus
    assert np.isfinite(result["loss"]).all() and result["dtypes"] == ["float32"]
