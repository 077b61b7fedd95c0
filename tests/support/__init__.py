"""Test helpers: a raw recording upstream (recorder.Recorder)."""
