#!/usr/bin/python3
"""A tiny real RTSP server for tests: serves one H.264 video file with GstRtspServer.

Run it with the SYSTEM python (it needs ``gi`` with GStreamer, GstRtspServer, which the
project venv does not have)::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --path /cam --file video.mp4

Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-rtsp.

The video stream is re-payloaded, never re-encoded (Debian's GStreamer has no x264enc
and no avdec_h264), so the file must hold H.264 video in an MP4/MOV (qtdemux) or MKV
(matroskademux) container; any audio track is ignored. Every client gets its own
pipeline (``shared=False``), so a client that reconnects starts again from the
beginning of the file and the server paces frames in real time (the RTSP sinks sync to
the pipeline clock). The server does not loop: at the end of the file the client sees
the stream end. Tests that need a long stream make a longer file first (e.g.
``ffmpeg -stream_loop N -i in.mp4 -c copy -an out.mp4``).

Prints ``READY rtsp://127.0.0.1:PORT/PATH`` on stdout once it listens, then serves until
SIGTERM/SIGINT. Exit status 2 on a usage/setup error (missing file, missing plugin).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def _demuxer_for(path: Path) -> str:
    """Pick the demuxer from the file name: Matroska/WebM or else the ISO/QuickTime one."""
    return "matroskademux" if path.suffix.lower() in {".mkv", ".webm"} else "qtdemux"


def build_launch(path: Path) -> str:
    """The gst-launch style description of one client's pipeline (pay0 is the stream)."""
    demux = _demuxer_for(path)
    # Quote the location: tmp paths may contain spaces. The video pad is requested by
    # name so an audio track (e.g. the mp3 in the shared sample videos) is ignored.
    location = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! {demux} name=d '
        "d.video_0 ! queue ! h264parse config-interval=-1 ! "
        "rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/stream", help="mount path, e.g. /cam")
    parser.add_argument("--file", type=Path, required=True, help="H.264 mp4/mov/mkv file")
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args(argv)

    if not args.file.is_file():
        print(f"rtsp_server: no such file: {args.file}", file=sys.stderr)
        return 2
    mount = args.path if args.path.startswith("/") else "/" + args.path

    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"rtsp_server: GStreamer RTSP server bindings unavailable: {exc}", file=sys.stderr)
        return 2

    Gst.init(None)
    demux = _demuxer_for(args.file)
    missing = [
        name
        for name in ("filesrc", demux, "queue", "h264parse", "rtph264pay")
        if Gst.ElementFactory.find(name) is None
    ]
    if missing:
        print(f"rtsp_server: missing GStreamer elements: {', '.join(missing)}", file=sys.stderr)
        return 2

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(build_launch(args.file.resolve()))
    # One pipeline per client: a reconnecting client starts from the beginning instead
    # of joining a pipeline that may already have reached end-of-stream.
    factory.set_shared(False)
    server.get_mount_points().add_factory(mount, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 2

    def _quit(*_: object) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    # GLib's unix signal source runs the handler inside the main loop (a Python signal
    # handler would only run once the loop hands control back to Python).
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, _quit)

    print(f"READY rtsp://{args.address}:{server.get_bound_port()}{mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
