"""The seed's whole process end to end at toy size: prepare -> train -> evaluate -> video, through the
seed's own script and flags."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_seed_script_runs_the_whole_process(tiny_corpus, tmp_path, repo):
    out_model = tmp_path / "best_model_gan.pt"
    cmd = [
        sys.executable,
        str(repo / "main_transformer_gan.py"),
        "--data_verts_path",
        str(tiny_corpus / "data_verts.npy"),
        "--audio_pkl_path",
        str(tiny_corpus / "processed_audio_deepspeech.pkl"),
        "--idx_map_path",
        str(tiny_corpus / "subj_seq_to_idx.pkl"),
        "--template_path",
        str(tiny_corpus / "templates.pkl"),
        "--template_ply_path",
        str(tiny_corpus / "FLAME_sample.ply"),
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--output_model",
        str(out_model),
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--set",
        "model.d_model=32",
        "--set",
        "model.n_layers=1",
        "--set",
        "model.d_channels=16",
    ]
    proc = subprocess.run(
        cmd,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env={"VOCAGAN_PROGRESS": "0", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    assert out_model.is_file() and (run / "train" / "best.pt").is_file()
    assert (run / "eval" / "metrics.json").is_file() and (run / "eval" / "metrics.md").is_file()
    assert list((run / "train").glob("*.png")), "training curves missing"
    videos = list((run / "video").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 10_000
    assert "LVE" in proc.stdout


def test_run_pipeline_leaves_the_callers_config_alone(monkeypatch, tmp_path):
    """The built-in corpus is used through a copy of the config: the caller's cfg.data.root stays unset."""
    from vocagan import pipeline
    from vocagan.config import load_config

    class Stop(Exception):
        pass

    def stop(cfg):
        assert cfg.data.root == str(tmp_path / "corpus")  # the run itself sees the corpus
        raise Stop

    monkeypatch.setattr(pipeline, "builtin_corpus", lambda out, template_ply: out)
    monkeypatch.setattr("vocagan.prep.prepare.prepare", stop)
    cfg = load_config()
    with pytest.raises(Stop):
        pipeline.run_pipeline(cfg, tmp_path, data_given=False)
    assert cfg.data.root is None


def test_the_main_job_animates_a_template_it_is_given(monkeypatch, tmp_path):
    """`vocagan pipeline --template_ply_path FLAME_sample.ply` without data: the built-in corpus on that
    mesh (the corpus holds it as its FLAME_sample.ply, so the run reads it from the corpus)."""
    from vocagan import cli, pipeline

    seen = {}

    class Stop(Exception):
        pass

    def corpus(out, template_ply):
        seen["template"] = template_ply
        return out

    def stop(cfg):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(pipeline, "builtin_corpus", corpus)
    monkeypatch.setattr("vocagan.prep.prepare.prepare", stop)
    with pytest.raises(Stop):
        cli.main(["pipeline", "--template_ply_path", "my_flame.ply", "--masks", "m.pkl", "--out", str(tmp_path)])
    assert seen["template"] == "my_flame.ply"
    assert seen["cfg"].data.root == str(tmp_path / "corpus") and seen["cfg"].data.template_ply_path is None
    assert seen["cfg"].data.masks_path == "m.pkl"  # the user's masks still define the regions


def test_the_ground_truth_for_the_video_is_written_atomically(monkeypatch, tiny_corpus, tmp_path):
    """A failure while writing gt.npy leaves no file under the final name (np.save straight to the
    final name used to leave a truncated one)."""
    import numpy as np

    from vocagan import pipeline
    from vocagan.config import load_config

    cfg = load_config(overrides=[f"data.root={tiny_corpus}"])
    predictions = tmp_path / "preds"
    predictions.mkdir()
    subject, sentence = "FaceTalk_170809_00138_TA", "sentence21"
    (predictions / f"{subject}_{sentence}_x.npy").write_bytes(b"")

    def broken_save(file, arr, **kw):
        with open(file, "wb") as f:
            f.write(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        pipeline.render_test_example(cfg, tmp_path / "ckpt.pt", predictions, tmp_path / "video")
    assert not list((tmp_path / "video").glob("*_gt.npy"))


def test_a_second_run_with_unchanged_inputs_reuses_everything(tiny_corpus, tmp_path, repo):
    """The main job run twice: the second finds the finished training run (same config and data), the
    evaluation and the video (same checkpoint, data and code) and does none of them again; a changed
    setting trains again. Logs go to a pipe (not a terminal): one line per epoch, no progress-bar frames."""
    import os

    cmd = [
        sys.executable,
        "-m",
        "vocagan",
        "pipeline",
        "--model",
        "rnn",
        "--data",
        str(tiny_corpus),
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--epochs",
        "2",
        "--set",
        "model.hidden=16",
        "--set",
        "model.n_layers=1",
    ]
    env = {k: v for k, v in os.environ.items() if k != "VOCAGAN_PROGRESS"}  # the default: bars on terminals only
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(repo))

    def run(*extra: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd + list(extra), cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    first = run()
    assert "\r" not in first.stderr  # no progress-bar frames in a log
    assert [line.split(":")[0] for line in first.stderr.splitlines() if line.startswith("[train] epoch")] == [
        "[train] epoch 1",
        "[train] epoch 2",
    ]
    best = tmp_path / "run" / "train" / "best.pt"
    video = next((tmp_path / "run" / "video").glob("*.mp4"))
    stamps = best.stat().st_mtime_ns, video.stat().st_mtime_ns
    second = run()
    assert "reused (inputs unchanged): training run, evaluation, video" in second.stdout
    assert (best.stat().st_mtime_ns, video.stat().st_mtime_ns) == stamps  # nothing written again
    assert "[train] epoch" not in second.stderr

    def table(out: str) -> str:
        return out[out.index("## Evaluation") :].split("\n\n")[1]

    assert table(second.stdout) == table(first.stdout)  # the reused evaluation reports the same numbers
    third = run("--set", "train.lr=0.002")  # another setting: trained again, evaluated again
    assert "another config (train.lr)" in third.stderr and "[train] epoch 2" in third.stderr
    assert "reused" not in third.stdout
