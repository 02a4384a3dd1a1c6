"""Deployment scripts: ONNX export, TensorRT engine build, benchmark and cost report.

Run them from the repository root, as files (``python deploy/export_onnx.py ...``) or as modules
(``python -m deploy.export_onnx ...``); see ``deploy/README.md``.
"""
