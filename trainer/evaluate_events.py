"""False events on neutral faces, delay of real expressions, and track ids per face.

    python -m trainer.evaluate_events [MODEL.onnx | fast | ferplus | accurate ...]
        [--data DIR] [--neutral N] [--expressive N] [--seconds S] [--fps F]
        [--set KEY=V1,V2 ...] [--fold all|tune|check] [--people auto|all|train|held_out]
        [--videos] [--json]

The event policy turns per-frame probabilities into the events subscribers act on; a
model that calls a neutral face "sad" for one second in ten becomes a stream of false
``start``/``update`` events and alerts. This replays short clips through the daemon's
own :class:`~edge_daemon.pipeline.CameraAnalyzer` (detector, crop, model, tracker,
event policy, with the config's cadence of detection), on the daemon's default config
plus one alert rule per non-neutral emotion at the schema's default thresholds:

* **neutral clips**: each in-the-wild photo labelled neutral, placed in a frame as in
  :mod:`trainer.evaluate_e2e`, held for ``--seconds`` at ``--fps`` with what a real
  camera adds frame to frame (a pixel or two of motion, flicker, sensor noise). Every
  ``start``/``update`` naming another emotion, and every alert, is a false event.
* **expressive clips**: the photos labelled with another emotion, the same way: is the
  labelled emotion reported, and how long after the face appears (the detection delay
  the policy's ``establish_s`` and smoothing cost)? They are taken in turn from each
  emotion (all of a rare one when it has fewer), so that happy faces, most of the
  photos, do not decide the figure alone; it is also given per emotion.
* ``--videos``: the shared videos (no labels): events per minute, confirmed track ids,
  the most faces tracked at once; ids per concurrent face says how often one person's
  track broke into several, and ``suspected_id_breaks`` counts the new ids that appear
  within a face width of where another track was seen less than ``max_missed_s`` ago
  (a face that lost its id, or two faces crossing: an upper bound without labels).

``--set events.establish_s=0.5,1.0 --set events.min_confidence=0.45,0.6`` runs every
combination side by side (any ``section.key`` of the daemon config), for tuning.
``--fold tune`` and ``--fold check`` split every emotion's photos in two halves (even and
odd positions): choose settings on one, report them on the other, so the figure a
default is shipped with was not the one it was picked on.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edge_daemon.classify.model import EmotionModel, ModelLoadError
from edge_daemon.config import AppConfig
from edge_daemon.config.schema import EMOTIONS
from edge_daemon.detect.blazeface import InterpreterPool
from edge_daemon.labels import FER_LABELS
from edge_daemon.pipeline import CameraAnalyzer
from edge_daemon.types import Event, Frame
from trainer.data import default_data_dir
from trainer.evaluate import report_cli
from trainer.evaluate_e2e import (
    E2EError,
    add_people_option,
    load_inthewild,
    place_in_frame,
    resolve_models,
    scored_people,
    seen_by,
)

DEFAULT_SECONDS = 8.0
DEFAULT_FPS = 10.0
VIDEOS = (
    "fer__woman2.mp4",
    "pyfeat__single_face.mp4",
    "facenet_pytorch__video.mp4",
    "ultralight__test1.mp4",
)


@dataclass
class ClipResult:
    label: str
    events: list[Event] = field(default_factory=list)
    tracks: set[int] = field(default_factory=set)


def jittered(photo: np.ndarray, seconds: float, fps: float, seed: int) -> Iterator[np.ndarray]:
    """The photo in a frame, as a fixed camera films a person holding still."""
    frame, _ = place_in_frame(photo)
    rng = np.random.default_rng(seed)
    h, w = frame.shape[:2]
    # A few noise fields, cycled: drawing a fresh one per 875x875 frame cost 30 ms, most
    # of the replay, and the model cannot tell four fields from a new one each frame.
    noise = [rng.normal(0, 2.0, frame.shape).astype(np.float32) for _ in range(4)]
    for i in range(max(1, round(seconds * fps))):
        dx, dy = rng.uniform(-2, 2, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        f = cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        f *= rng.uniform(0.97, 1.03)
        f += noise[i % len(noise)]
        yield np.clip(f, 0, 255).astype(np.uint8)


def base_config(overrides: dict[str, Any]) -> AppConfig:
    """The daemon's defaults, one camera with an alert per non-neutral emotion."""
    alerts = [{"name": f"{e}-alert", "emotion": e} for e in EMOTIONS if e != "neutral"]
    raw: dict[str, Any] = {
        "cameras": [{"name": "clip", "source": {"type": "sample"}, "alerts": alerts}]
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = value
    return AppConfig.model_validate(raw)


def replay(
    cfg: AppConfig,
    model: EmotionModel,
    pool: InterpreterPool,
    frames: Iterator[np.ndarray],
    fps: float,
) -> ClipResult:
    """Feed frames to a fresh analyzer at ``fps`` (synthetic clock); collect events."""
    analyzer = CameraAnalyzer(cfg.cameras[0], cfg, model, pool)
    analyzer.open()
    out = ClipResult("")
    t0 = 1000.0
    for i, img in enumerate(frames):
        events = analyzer.process(Frame("clip", i, 1.7e9 + i / fps, t0 + i / fps, img))
        out.events += events
        out.tracks.update(t.track_id for t in analyzer.last_tracks)
    out.events += analyzer.flush()
    analyzer.close()
    return out


def _emotion_events(res: ClipResult) -> list[Event]:
    return [e for e in res.events if e.type in ("start", "update")]


def neutral_report(results: list[ClipResult], seconds: float) -> dict:
    false_events = [e for r in results for e in _emotion_events(r) if e.emotion != "neutral"]
    alerts = [e for r in results for e in r.events if e.type == "alert"]
    clips_false = sum(
        any(e.emotion != "neutral" for e in _emotion_events(r))
        or any(e.type == "alert" for e in r.events)
        for r in results
    )
    minutes = len(results) * seconds / 60
    by_emotion: dict[str, int] = {}
    for e in false_events:
        by_emotion[e.emotion] = by_emotion.get(e.emotion, 0) + 1
    return {
        "clips": len(results),
        "clips_with_false_event": clips_false,
        "false_start_update": len(false_events),
        "false_alerts": len(alerts),
        "false_per_minute": (len(false_events) + len(alerts)) / max(minutes, 1e-9),
        "neutral_reported": sum(
            any(e.emotion == "neutral" for e in _emotion_events(r)) for r in results
        ),
        "false_by_emotion": by_emotion,
    }


def expressive_report(results: list[ClipResult], t0: float = 1000.0) -> dict:
    delays, hits, first_right = [], 0, 0
    by_emotion: dict[str, list[int]] = {}  # emotion -> [reported, clips]
    for r in results:
        ev = _emotion_events(r)
        right = [e for e in ev if e.emotion == r.label]
        seen = by_emotion.setdefault(r.label, [0, 0])
        seen[1] += 1
        if right:
            hits += 1
            seen[0] += 1
            # ts is wall time: 1.7e9 + seconds since the clip began.
            delays.append(right[0].ts - 1.7e9)
        if ev and ev[0].emotion == r.label:
            first_right += 1
    return {
        "clips": len(results),
        "reported": hits,
        "first_event_right": first_right,
        "median_delay_s": float(np.median(delays)) if delays else None,
        "p90_delay_s": float(np.percentile(delays, 90)) if delays else None,
        "reported_by_emotion": dict(sorted(by_emotion.items())),
    }


def is_rebirth(
    box: tuple[float, float, float, float],
    t: float,
    recent: dict[int, tuple[float, tuple[float, float, float, float]]],
    window_s: float,
) -> bool:
    """Whether a new id's first box is probably a face that already had an id: it is
    within one face width of where another track was last seen, at most ``window_s``
    ago (the tracker's ``max_missed_s``: a track lost later than that is a new id by
    design). ``recent``: id -> (time last matched, box then)."""
    x0, y0, x1, y1 = box
    w = max(x1 - x0, y1 - y0, 1e-6)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for seen, (a0, b0, a1, b1) in recent.values():
        if t - seen > window_s + 1e-9:
            continue
        if abs((a0 + a1) / 2 - cx) < w and abs((b0 + b1) / 2 - cy) < w:
            return True
    return False


def video_report(cfg: AppConfig, model: EmotionModel, pool: InterpreterPool, path: Path) -> dict:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise E2EError(f"{path}: cannot open the video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0

    def frames() -> Iterator[np.ndarray]:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield img

    analyzer = CameraAnalyzer(cfg.cameras[0], cfg, model, pool)
    analyzer.open()
    events: list[Event] = []
    ids: set[int] = set()
    recent: dict[int, tuple[float, tuple[float, float, float, float]]] = {}
    most = n = reborn = 0
    for i, img in enumerate(frames()):
        t = i / fps
        events += analyzer.process(Frame("clip", i, 1.7e9 + t, 1000.0 + t, img))
        for tr in analyzer.last_tracks:
            if tr.track_id not in ids:
                reborn += is_rebirth(tr.xyxy, t, recent, cfg.tracker.max_missed_s)
            ids.add(tr.track_id)
            recent[tr.track_id] = (
                (t, tr.xyxy) if tr.observed else recent.get(tr.track_id, (t, tr.xyxy))
            )
        most = max(most, len(analyzer.last_tracks))
        n = i + 1
    events += analyzer.flush()
    cap.release()
    minutes = n / fps / 60
    started = {e.track_id for e in events if e.type == "start"}
    return {
        "frames": n,
        "seconds": round(n / fps, 1),
        "confirmed_track_ids": len(ids),
        "most_tracks_at_once": most,
        "ids_per_concurrent_face": len(ids) / most if most else None,
        "suspected_id_breaks": reborn,
        "tracks_started": len(started),
        "start_update_per_minute": len([e for e in events if e.type in ("start", "update")])
        / max(minutes, 1e-9),
        "alerts": len([e for e in events if e.type == "alert"]),
        "emotions": sorted({e.emotion for e in events if e.type in ("start", "update")}),
    }


def _spread(idx: list[int], k: int) -> list[int]:
    """``k`` items spread evenly over ``idx`` (all when ``k`` is 0 or too large)."""
    if not k or k >= len(idx):
        return idx
    return [idx[j] for j in np.linspace(0, len(idx) - 1, k).round().astype(int)]


#: ``--fold`` -> which positions of each emotion's photo list it keeps.
FOLDS = {"all": slice(None), "tune": slice(0, None, 2), "check": slice(1, None, 2)}


def _balanced(by_class: dict[str, list[int]], k: int) -> list[int]:
    """``k`` items taken in turn from each class (each class's share spread over it);
    all of them when ``k`` is 0 or at least their number. Sorted by position."""
    total = sum(len(v) for v in by_class.values())
    if not k or k >= total:
        return sorted(i for v in by_class.values() for i in v)
    share = dict.fromkeys(by_class, 0)
    while sum(share.values()) < k:
        for c, items in by_class.items():
            if share[c] < len(items) and sum(share.values()) < k:
                share[c] += 1
    return sorted(i for c, items in by_class.items() for i in _spread(items, share[c]))


def select_clips(
    labels: list[int], neutral: int, expressive: int, fold: str = "all"
) -> tuple[list[int], list[int]]:
    """Photo indices of the neutral clips (spread over the neutral photos) and of the
    expressive ones (balanced over the other emotions), within ``fold``."""
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(FER_LABELS[y], []).append(i)
    part = {c: v[FOLDS[fold]] for c, v in sorted(by_class.items())}
    neutral_idx = _spread(part.pop("neutral", []), neutral)
    return neutral_idx, _balanced(part, expressive)


def _grid(sets: list[str]) -> list[dict[str, Any]]:
    keys, values = [], []
    for s in sets:
        if "=" not in s or "." not in s.split("=", 1)[0]:
            raise E2EError(f"--set {s!r}: expected section.key=value[,value...]")
        k, v = s.split("=", 1)
        keys.append(k.strip())
        values.append([yaml.safe_load(x) for x in v.split(",")])
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)] or [{}]


def run(args: argparse.Namespace) -> dict:
    data = Path(args.data) if args.data else default_data_dir()
    models = {}
    for name, path in resolve_models(args.models).items():
        try:
            models[name] = EmotionModel(path, "cpu", 1)
        except ModelLoadError as exc:
            raise E2EError(str(exc)) from exc
    # Photos of people a model was fitted on would flatter its events: the others only
    # (unless --seen, and then the report says which models knew the faces).
    people = scored_people(models, args.people, args.seen)
    paths, labels = load_inthewild(data / "inthewild", people=people)
    neutral_idx, other_idx = select_clips(labels, args.neutral, args.expressive, args.fold)
    photos = {i: cv2.imread(str(paths[i]), cv2.IMREAD_COLOR) for i in neutral_idx + other_idx}
    for i, img in photos.items():
        if img is None:
            raise E2EError(f"{paths[i]}: not a readable image")
    report: dict = {
        "seconds": args.seconds,
        "fps": args.fps,
        "fold": args.fold,
        "people": people,
        "seen_by": seen_by(models, people),
        "runs": [],
    }
    for overrides in _grid(args.set):
        try:
            cfg = base_config(overrides)
        except ValueError as exc:
            raise E2EError(f"--set {overrides}: {exc}") from exc
        for name, path in resolve_models(args.models).items():
            try:
                model = EmotionModel(
                    path,
                    "cpu",
                    cfg.model.intra_op_threads,
                    cfg.model.tta_hflip,
                    cfg.model.tta_hflip_below,
                )
            except ModelLoadError as exc:
                raise E2EError(str(exc)) from exc
            pool = InterpreterPool(cfg.detector.model, 1, cfg.detector.threads)
            neutral, expressive = [], []
            for i in neutral_idx + other_idx:
                res = replay(
                    cfg, model, pool, jittered(photos[i], args.seconds, args.fps, i), args.fps
                )
                res.label = FER_LABELS[labels[i]]
                (neutral if res.label == "neutral" else expressive).append(res)
            entry = {
                "model": name,
                "overrides": overrides,
                "neutral": neutral_report(neutral, args.seconds),
                "expressive": expressive_report(expressive),
            }
            if args.videos:
                entry["videos"] = {
                    v: video_report(cfg, model, pool, data / "videos" / v) for v in VIDEOS
                }
            report["runs"].append(entry)
    return report


def format_report(r: dict) -> str:
    lines = [
        f"{r['seconds']:g} s clips at {r['fps']:g} fps, photos: {r.get('fold', 'all')}, "
        f"people {r.get('people', 'all')}; "
        "neutral: false start/update/alert events on neutral faces; expressive: labelled "
        "emotion reported, median delay"
    ]
    head = (
        f"{'model':<12}{'settings':<44}{'false/min':>10}{'clips w/ false':>16}"
        f"{'reported':>10}{'delay s':>9}"
    )
    lines += [head, "-" * len(head)]
    for e in r["runs"]:
        n, x = e["neutral"], e["expressive"]
        sets = (
            " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in e["overrides"].items()) or "defaults"
        )
        delay = "-" if x["median_delay_s"] is None else f"{x['median_delay_s']:.2f}"
        lines.append(
            f"{e['model']:<12}{sets:<44}{n['false_per_minute']:>10.2f}"
            f"{n['clips_with_false_event']:>9}/{n['clips']:<6}"
            f"{x['reported']:>5}/{x['clips']:<4}{delay:>9}"
        )
        per = x.get("reported_by_emotion", {})
        if per:
            lines.append("    reported: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in per.items()))
        for v, s in e.get("videos", {}).items():
            lines.append(
                f"    {v:<30} ids {s['confirmed_track_ids']:>3} "
                f"(at once {s['most_tracks_at_once']}, suspected breaks "
                f"{s['suspected_id_breaks']}), "
                f"{s['start_update_per_minute']:.1f} events/min, alerts {s['alerts']}"
            )
    if r.get("seen_by"):
        lines.append(
            f"SEEN: {', '.join(r['seen_by'])} trained on some of these photos: a check of "
            "the file, not its false events on people it has not seen"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="*", help="ONNX files or bundled names (default: fast)")
    ap.add_argument("--data", help="data root (default: $EDGE_DATA_DIR or ../shared/data)")
    ap.add_argument("--neutral", type=int, default=120, help="neutral clips (0 = all 1,388)")
    ap.add_argument("--expressive", type=int, default=0, help="expressive clips (0 = all)")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    ap.add_argument("--fps", type=float, default=DEFAULT_FPS)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2")
    ap.add_argument(
        "--fold",
        choices=sorted(FOLDS),
        default="all",
        help="all photos, or one half of each emotion's (tune: even positions, check: odd)",
    )
    add_people_option(ap)
    ap.add_argument("--videos", action="store_true", help="also replay the shared videos")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = ap.parse_args(argv)
    args.models = args.models or ["fast"]
    if (
        args.neutral < 0
        or args.expressive < 0
        or not 0 < args.seconds <= 120
        or not 1 <= args.fps <= 60
    ):
        print("error: clip counts >= 0, 0 < --seconds <= 120, 1 <= --fps <= 60", file=sys.stderr)
        return 2
    return report_cli(run, format_report, args, (E2EError,))


if __name__ == "__main__":
    sys.exit(main())
