"""Bridges from the published ZeroMQ stream to other middleware (``realtime-fer bridge``).

* :mod:`.ros4hri`: ROS 2 topics following REP-155 (ROS4HRI), docs/ros4hri.md.
"""
