"""The error hierarchy: every envelope error has its own stable reason, and the docstring tells the truth."""

from __future__ import annotations

import inspect

from sharehub import errors


def envelope_errors() -> list[type[errors.EnvelopeError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.EnvelopeError) and cls is not errors.EnvelopeError
    ]


def test_each_envelope_error_has_its_own_reason() -> None:
    reasons = [cls.reason for cls in envelope_errors()]
    assert len(reasons) == len(set(reasons)) == len(envelope_errors())
    assert "malformed" in reasons and "subject_erased" in reasons


def test_the_module_docstring_draws_every_error_with_its_reason() -> None:
    doc = errors.__doc__ or ""
    for cls in envelope_errors():
        line = next(line for line in doc.splitlines() if f" {cls.__name__} " in line)
        assert line.rstrip().endswith(cls.reason), cls.__name__
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.SharehubError):
            assert cls.__name__ in doc
