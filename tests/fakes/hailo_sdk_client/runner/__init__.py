"""Fake ``hailo_sdk_client.runner``."""
