"""Interactive apps on top of tfaudio models (optional extras, imported only when used).

- :mod:`tfaudio.apps.gradio_demo`: the ``tfaudio demo`` web page (``pip install 'tfaudio[demo]'``).
"""
