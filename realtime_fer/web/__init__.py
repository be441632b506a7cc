"""The live browser view: ``realtime-fer serve`` (a room of its own beside the pipeline).

A page for kiosks and demo stands: the live video with each face's box, its top emotion, its
smoothed probability bars and the regions or landmarks that drove the decision, and each
stream's fps, latency and status. The server only *subscribes*: it reads a recognizer's ZeroMQ
stream (predictions, statuses and the optional JPEG frames, docs/messages.md), either one it
starts itself (``serve --source``) or one already running elsewhere (``serve --connect``).

* :mod:`.views`: what one stream looks like now (latest frame, faces, status), built from the
  messages, packed for the page.
* :mod:`.feed`: the ZeroMQ subscriber thread that feeds the views.
* :mod:`.server`: the aiohttp application (page, static files, WebSocket), access token.
* ``static/``: the page (HTML, JavaScript, CSS), served from the package: no CDN, no download.
"""
