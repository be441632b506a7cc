"""The ROS4HRI bridge: our predictions and status events as REP-155 topics (docs/ros4hri.md).

* :mod:`.mapping`: pure mapping of :class:`~realtime_fer.publish.Prediction` /
  :class:`~realtime_fer.publish.Status` messages to the fields of ``hri_msgs`` messages on
  ``/humans/faces/...`` topics (no ROS needed);
* :mod:`.definitions`: the real ``hri_msgs`` ``.msg`` definitions carried in ``msg/`` (BSD,
  see ``msg/NOTICE``) and their rosbags serialisation, which the tests use without ROS 2;
* :mod:`.bridge`: the loop from a ZeroMQ :class:`~realtime_fer.publish.Subscriber` to a
  message sink;
* :mod:`.node`: the rclpy node behind ``realtime-fer bridge ros4hri`` (needs ROS 2 and
  ``hri_msgs`` on the machine).
"""

from realtime_fer.bridges.ros4hri.mapping import (
    EXPRESSIONS,
    MSG_TYPES,
    Mapped,
    Ros4hriMapper,
    Ros4hriOptions,
    RosMessage,
    face_id,
)

__all__ = ["EXPRESSIONS", "MSG_TYPES", "Mapped", "Ros4hriMapper", "Ros4hriOptions", "RosMessage", "face_id"]
