"""bench/go_template.py follows Go's text/template on what Ollama's templates use, and refuses the rest."""

from __future__ import annotations

import pytest

from bench.go_template import Struct, TemplateError, execute, parse


def test_trim_markers_branches_ranges_and_variables_behave_as_in_go() -> None:
    data = {"Items": [Struct(Name="a"), Struct(Name="b")], "Empty": [], "N": 2}
    text = (
        "<{{- range $i, $x := .Items }}\n  {{ $i }}={{ $x.Name }}{{ $last := eq (len (slice $.Items $i)) 1 }}"
        "{{ if $last }}!{{ end }}\n{{- end }} -\n {{- range .Empty }}x{{ else }}none{{ end -}}\n  >"
    )
    assert execute(text, data) == "<\n  0=a\n  1=b! -none>"
    chain = "{{ if eq .N 1 }}one{{ else if eq .N 2 3 }}two or three{{ else }}other{{ end }}"
    assert execute(chain, data) == "two or three"
    # and / or return the deciding value and stop there (Go 1.18): .Missing is never evaluated.
    words = {"A": "", "B": "b"}
    assert execute("{{ or .A .B }}|{{ or .B .Missing.X }}|{{ and .A .Missing.X }}|{{ not .A }}", words) == (
        "b|b||true"
    )
    with pytest.raises(TemplateError):  # …whereas evaluating it fails: a field of nothing
        execute("{{ or .A .Missing.X }}", words)
    assert execute('{{ "a\\tb" }}{{/* a comment */}}{{ json .N }}', data) == "a\tb2"


def test_what_go_rejects_or_the_subset_lacks_is_an_error() -> None:
    for bad in ("{{ if .X }}open", "x{{ end }}", "{{ .X ", "{{ with .X }}{{ end }}", "{{ printf \"%d\" 1 }}",
                "{{ else }}", "{{ (.X }}"):  # fmt: skip
        with pytest.raises(TemplateError):
            parse(bad)
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        execute("{{ .Item.Nope }}", {"Item": Struct(Name="a")})
    with pytest.raises(TemplateError, match='undefined variable "\\$x"'):
        execute("{{ $x }}", {})
    with pytest.raises(TemplateError, match="without a String method"):
        execute("{{ .Item }}", {"Item": Struct(Name="a")})
    assert execute("{{ .Item }}", {"Item": Struct(text='{"name":"a"}', Name="a")}) == '{"name":"a"}'
