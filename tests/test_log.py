"""Structured logs: both formats, the level from the environment, and refused level names."""

import json
import logging

import numpy as np
import pytest

from scratchlm.errors import ConfigError
from scratchlm.log import log_metrics, logger, setup_logging


@pytest.fixture(autouse=True)
def restore_logger():
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers, logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])


def test_text_format_renders_fields_as_key_value(capsys):
    setup_logging("info", "text")
    log_metrics("pretrain", epoch=3, loss=2.41234, grad_norm=np.float32(0.83), lr=0.0005, ok=True)
    log_metrics("sample", text="two words", name="x")  # "name" is a LogRecord attribute too
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "event=pretrain epoch=3 loss=2.412 grad_norm=0.83 lr=0.0005 ok=true",
        'event=sample text="two words" name=x',
    ]


def test_text_format_renders_plain_messages(capsys):
    setup_logging("debug", "text")
    logger.warning("vocabulary has %d words", 5)
    logger.info("saved")
    assert capsys.readouterr().err.splitlines() == [
        'level=warning msg="vocabulary has 5 words"',
        "msg=saved",
    ]


def test_json_format_is_one_object_per_line(capsys):
    setup_logging("info", "json")
    log_metrics("pretrain", epoch=3, loss=np.float64(2.41234), grad_norm=float("nan"))
    logger.warning("careful")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["level"] == "info" and first["event"] == "pretrain"
    assert first["epoch"] == 3 and first["loss"] == 2.41234 and first["grad_norm"] == "nan"
    assert first["time"].endswith("Z")
    assert second["level"] == "warning" and second["msg"] == "careful"


def test_level_comes_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("SCRATCHLM_LOG", "WARNING")
    setup_logging()
    assert logger.level == logging.WARNING
    logger.info("hidden")
    logger.error("shown")
    assert capsys.readouterr().err == "level=error msg=shown\n"


def test_argument_beats_the_environment_and_default_is_info(monkeypatch):
    monkeypatch.setenv("SCRATCHLM_LOG", "error")
    setup_logging("debug")
    assert logger.level == logging.DEBUG
    monkeypatch.delenv("SCRATCHLM_LOG")
    setup_logging()
    assert logger.level == logging.INFO


def test_calling_setup_twice_does_not_duplicate_lines(capsys):
    setup_logging("info")
    setup_logging("info")
    logger.info("once")
    assert capsys.readouterr().err == "msg=once\n"


def test_invalid_level_is_a_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="'loud'.*debug, info"):
        setup_logging("loud")
    monkeypatch.setenv("SCRATCHLM_LOG", "verbose")
    with pytest.raises(ConfigError, match="SCRATCHLM_LOG"):
        setup_logging()


def test_invalid_format_is_a_config_error():
    with pytest.raises(ConfigError, match="yaml"):
        setup_logging("info", "yaml")
