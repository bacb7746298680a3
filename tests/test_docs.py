"""The README keeps up with the code: every task and every endpoint is mentioned in it."""

from __future__ import annotations

import re

from cloutsy.config import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_invoke_task_is_in_the_readme():
    import tasks

    def documented(name: str) -> bool:
        collection, _, task = name.rpartition(".")
        default = collection and tasks.ns.collections[collection].default == task
        return f"invoke {name}" in README or bool(default and f"invoke {collection}`" in README)

    missing = sorted(n for n in tasks.ns.task_names if not documented(n))
    assert not missing, f"README does not mention: {missing}"


def test_every_endpoint_is_in_the_readme(wsgi_app):
    missing = []
    for route in wsgi_app.routes:
        # `/influencers/<id>/niches` is written `/influencers/{id}/niches` (any placeholder name).
        pattern = re.escape(route.rule)
        pattern = re.sub(r"<\w+>", r"\{[^}]+\}", pattern.replace("\\<", "<").replace("\\>", ">"))
        if not re.search(f"{route.method} `?{pattern}(?![\\w/])|`{pattern}`", README):
            missing.append(f"{route.method} {route.rule}")
    assert not missing, f"README does not mention: {missing}"


def test_every_setting_is_in_the_readme():
    import inspect

    from cloutsy import config

    source = inspect.getsource(config.load_settings)
    variables = set(re.findall(r'"((?:CLOUTSY|POSTGRES|DATABASE)_[A-Z_]+)"', source))
    missing = sorted(v for v in variables if f"`{v}`" not in README)
    assert variables and not missing, f"README does not document: {missing}"
