"""Hardware targets as data: which backends and power sources exist there, and published figures."""
