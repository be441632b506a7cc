"""``realtime-fer bridge TARGET``: republish a running recognizer's stream on other middleware.

``bridge ros4hri --connect EP`` is a ROS 2 node that subscribes to our ZeroMQ stream and
publishes REP-155 (ROS4HRI) topics: ``/humans/faces/tracked`` and, per face,
``/humans/faces/<id>/roi``, ``/expression`` and ``/facs`` (docs/ros4hri.md). It needs ROS 2
(rclpy) and hri_msgs; where they are missing it stops with one ``error:`` line.
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_curve_client_arguments, curve_client

DEFAULT_CONNECT = "tcp://127.0.0.1:5556"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    ros = targets.add_parser(
        "ros4hri",
        help="a ROS 2 node publishing REP-155 topics (/humans/faces/...) from the stream",
        description="A ROS 2 node publishing REP-155 (ROS4HRI) topics from the stream (docs/ros4hri.md). Needs rclpy and hri_msgs.",
    )
    ros.add_argument(
        "--connect", action="append", metavar="ENDPOINT", help=f"recognizer endpoint, repeatable (default: {DEFAULT_CONNECT})"
    )
    ros.add_argument("--topic", action="append", metavar="PREFIX", help="topic prefix to bridge, repeatable (default: fer. = every stream)")
    ros.add_argument(
        "--contempt-as",
        default="disgusted",
        metavar="EXPRESSION",
        help="the hri_msgs/Expression constant published for contempt, which the message lacks (default: disgusted)",
    )
    ros.add_argument("--frame-id", metavar="FRAME", help="header.frame_id of the messages (default: the stream id)")
    ros.add_argument(
        "--tracked-period", type=float, default=1.0, metavar="S", help="resend /humans/faces/tracked at least every S seconds (default: 1)"
    )
    ros.add_argument("--node-name", default="realtime_fer_ros4hri", help="the ROS node name (default: realtime_fer_ros4hri)")
    add_curve_client_arguments(ros)


def run(args: argparse.Namespace) -> int:
    from realtime_fer.errors import FerError

    if args.target != "ros4hri":  # argparse allows only the targets above
        raise FerError(f"unknown bridge target {args.target!r}")
    from realtime_fer.bridges.ros4hri.mapping import Ros4hriOptions
    from realtime_fer.bridges.ros4hri.node import NodeOptions, run_node

    if not args.tracked_period > 0:
        raise FerError("--tracked-period must be positive")
    try:
        mapping = Ros4hriOptions(contempt_as=args.contempt_as, frame_id=args.frame_id)
    except ValueError as exc:
        raise FerError(f"--contempt-as: {exc}") from None
    options = NodeOptions(
        endpoints=args.connect or [DEFAULT_CONNECT],
        topics=args.topic or ["fer."],
        mapping=mapping,
        tracked_period_s=args.tracked_period,
        node_name=args.node_name,
        **curve_client(args),
    )
    return run_node(options)
