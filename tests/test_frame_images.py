"""Frame images (``FrameImage`` on ``fer.<stream>.frame.``): the message, its encodings, and
the recognizer's order (a frame's predictions, then its image)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.commands.listen import format_message
from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
from realtime_fer.publish import FrameImage, MessageError, Prediction, decode, encode, frame_topic
from realtime_fer.publish.frames import FrameImageEncoder, FrameImageOptions
from runtime_helpers import require_bundle


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    import cv2

    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (0, 128, 255)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_frame_image_round_trips_in_both_encodings(encoding: str) -> None:
    msg = FrameImage(stream="cam0", frame=7, t_capture=1.7e9, image_size=[1280, 720], jpeg=_jpeg())
    back = decode(encode(msg, encoding))  # type: ignore[arg-type]
    assert isinstance(back, FrameImage) and back.topic == frame_topic("cam0") == "fer.cam0.frame."
    assert back.jpeg == msg.jpeg and back.image_size == [1280, 720] and back.frame == 7 and back.t_publish is not None
    assert "frame 1280x720 jpeg" in format_message(back)


@pytest.mark.parametrize(
    "field, value, why",
    [("jpeg", b"GIF89a", "JPEG bytes"), ("jpeg", "not base64!", "JPEG bytes"), ("image_size", [0, 10], "positive"), ("frame", -1, "integer >= 0")],
)
def test_malformed_frame_images_are_refused(field: str, value: object, why: str) -> None:
    import msgpack

    data = FrameImage(stream="cam0", frame=1, t_capture=1.7e9, image_size=[64, 48], jpeg=_jpeg()).to_dict()
    data[field] = value
    with pytest.raises(MessageError, match=why):
        decode(msgpack.packb(data, use_bin_type=True))


def test_encoder_scales_down_and_keeps_a_steady_rate() -> None:
    import cv2

    enc = FrameImageEncoder(FrameImageOptions(max_width=320, quality=60, max_fps=10), "cam0")
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    sent = [enc.encode(image, i, 1.7e9 + i / 30, i / 30) for i in range(60)]  # 2 s at 30 fps
    kept = [m for m in sent if m is not None]
    assert 19 <= len(kept) <= 21  # 10 a second, spread evenly
    gaps = np.diff([m.frame for m in kept])
    assert set(gaps.tolist()) <= {3}
    decoded = cv2.imdecode(np.frombuffer(kept[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (180, 320, 3) and kept[0].image_size == [1280, 720]
    with pytest.raises(ValueError):
        FrameImageOptions(quality=0)


def test_recognizer_sends_each_frame_image_after_that_frames_predictions(shared_data: Path) -> None:
    config = RuntimeConfig()
    config = replace(config, frames=FrameImageOptions(enabled=True, max_fps=None), pipelined=False)
    sink = ListSink()
    rec = open_recognizer(str(shared_data / "video" / "mead" / "happy.mp4"), config, [sink], bundle=require_bundle())
    rec.run()
    kinds = [(type(m).__name__, getattr(m, "frame", None)) for m in sink.messages]
    images = [m for m in sink.messages if isinstance(m, FrameImage)]
    assert len(images) == rec.summary.frames  # max_fps null: every processed frame
    for i, m in enumerate(sink.messages):
        if isinstance(m, Prediction):  # its frame's image comes after it, before any later frame's
            later = [k for k in kinds[i + 1 :] if k[0] == "FrameImage"]
            assert later and later[0][1] == m.frame
    assert images[0].image_size == [256, 256]
