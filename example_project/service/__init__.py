"""A small shop's ML service: triage reviews, draft replies, paint product thumbnails.

``classify``, ``generate`` and ``imagine`` are the service; ``models`` stands in for a
model hub by building the checkpoints locally; ``settings`` reads the environment.
"""
