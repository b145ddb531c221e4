"""``--help`` of every command: a description, and for every option a help text and its
default; values no command can run with are usage errors before anything starts."""

from __future__ import annotations

import argparse

import pytest

from tilewatch.arguments import build_parser
from tilewatch.cli import main


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _summaries() -> dict[str, str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help or "" for choice in sub._choices_actions}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
    ]


def test_every_command_has_a_summary_and_a_description() -> None:
    summaries = _summaries()
    assert set(summaries) == set(_commands())
    for name, parser in _commands().items():
        assert summaries[name].strip(), name
        assert parser.description and len(parser.description) > len(summaries[name]), name


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_help_and_a_default(name: str) -> None:
    parser = _commands()[name]
    formatter = parser._get_formatter()
    for action in _options(parser):
        assert action.help and action.help.strip(), (name, action.option_strings)
        shown = formatter._get_help_string(action) % {"default": action.default}
        if action.required:
            assert "default" not in shown, (name, action.option_strings)
        else:
            assert "default" in shown, (name, action.option_strings, shown)
    text = parser.format_help()
    assert "(default: None)" not in text


def test_the_top_level_options_show_their_defaults() -> None:
    assert "(default: INFO)" in build_parser().format_help()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--duration", "-5"], "seconds > 0"),
        (["demo", "--duration", "0"], "seconds > 0"),
        (["demo", "--duration", "nan"], "seconds > 0"),
        (["demo", "--rate", "0"], "events per second > 0"),
        (["demo", "--port", "70000"], "TCP port"),
        (["produce-demo", "--bootstrap", "nonsense"], "HOST:PORT"),
        (["produce-demo", "--bootstrap", "host:port"], "HOST:PORT"),
        (["produce-demo", "--bootstrap", "a:9092,:9092"], "HOST:PORT"),
        (["produce-demo", "--bootstrap", "a:9092", "--total", "-1"], ">= 0"),
        (["broker", "--partitions", "0"], "partitions >= 1"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
