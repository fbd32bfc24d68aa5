"""The built-in synthetic action world (docs/synthetic_world.md): real h264 videos + SEAL / AVA annotations.

`config.py` holds the `data.synthetic` section and the size presets (read by config checks without rendering
anything); `world.py` builds, caches and describes worlds. Nothing is imported here, so reading the config does
not load the renderer.
"""
