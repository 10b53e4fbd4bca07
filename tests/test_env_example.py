""".env.example is the list of Railyard's configuration: every variable the code reads, and every
variable docker-compose.yml takes from the environment or .env, is in it, and nothing else is.

The code's reads are found in its source (``env(...)`` and its typed variants, functions that
pass their argument to ``env``, ``os.environ.get``, ``os.environ[...]``, ``os.getenv``), so a
read in a branch that does not run here counts too; the names the settings module recorded while
it loaded for this test run are added, so a read through a path the scan does not know is caught
as well.
"""

import ast
import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
# Django's own: manage.py, the WSGI module and the Celery app set it for themselves, and a .env
# could not set it (the settings module it names is what reads .env).
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}


def documented() -> set[str]:
    """Names .env.example sets or shows (``NAME=...`` or ``# NAME=...`` lines)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def python_sources() -> list[Path]:
    """The product's modules: top-level scripts and the packages beside them, not the tests."""
    packages = [
        path
        for path in ROOT.iterdir()
        if path.is_dir() and (path / "__init__.py").exists() and path.name != "tests"
    ]
    modules = [path for package in packages for path in package.rglob("*.py")]
    return sorted(
        [*ROOT.glob("*.py"), *(path for path in modules if "migrations" not in path.parts)]
    )


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_env_call(call: ast.Call) -> bool:
    """``env(...)`` or ``env.int(...)``, ``env.bool(...)``, ...: django-environ's reader."""
    function = call.func
    if isinstance(function, ast.Attribute):
        function = function.value
    return isinstance(function, ast.Name) and function.id == "env"


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _is_os_read(call: ast.Call) -> bool:
    """``os.environ.get(...)`` or ``os.getenv(...)`` (``setdefault`` sets, it is not a setting)."""
    function = call.func
    if not isinstance(function, ast.Attribute):
        return False
    if function.attr == "get":
        return _is_os_environ(function.value)
    return (
        function.attr == "getenv"
        and isinstance(function.value, ast.Name)
        and function.value.id == "os"
    )


def _env_wrappers(tree: ast.Module) -> dict[str, int]:
    """Functions that read the variable named by one of their parameters (``_required_secret``):
    function name -> the position of that parameter."""
    wrappers = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        parameters = [argument.arg for argument in function.args.args]
        for call in ast.walk(function):
            if isinstance(call, ast.Call) and _is_env_call(call) and call.args:
                first = call.args[0]
                if isinstance(first, ast.Name) and first.id in parameters:
                    wrappers[function.name] = parameters.index(first.id)
    return wrappers


def variables_read(source: str) -> set[str]:
    """Environment variables a module's source reads by a literal name."""
    tree = ast.parse(source)
    wrappers = _env_wrappers(tree)
    names: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if _is_env_call(node) or _is_os_read(node):
                names.add(_literal(node.args[0]))
            elif isinstance(function, ast.Name) and function.id in wrappers:
                position = wrappers[function.id]
                if len(node.args) > position:
                    names.add(_literal(node.args[position]))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _is_os_environ(node.value)
        ):
            names.add(_literal(node.slice))
    return {name for name in names if name} - NOT_CONFIGURATION


def code_reads() -> set[str]:
    found = set().union(*(variables_read(path.read_text()) for path in python_sources()))
    return found | (set(settings.ENVIRONMENT_NAMES_READ) - NOT_CONFIGURATION)


def compose_reads() -> set[str]:
    """Variables docker-compose.yml interpolates (``$$NAME`` is the container's, not compose's)."""
    text = (ROOT / "docker-compose.yml").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))


def test_the_scan_finds_reads_of_every_kind():
    # Given a module that reads variables in each of the ways the product's code does
    source = """
import os
env = None
def _required(name, fallback):
    return env(name, default="") or fallback
DEBUG = env.bool("DEBUG_LIKE", default=False)
PLAIN = env("PLAIN")
SECRET = _required("WRAPPED", "x")
WORKERS = os.environ.get("FROM_OS_ENVIRON_GET", "2")
HOME = os.environ["FROM_OS_ENVIRON_ITEM"]
SHELL = os.getenv("FROM_GETENV")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
"""

    # When it is scanned
    found = variables_read(source)

    # Then each read is found, and the settings module's name is not configuration
    assert found == {
        "DEBUG_LIKE",
        "PLAIN",
        "WRAPPED",
        "FROM_OS_ENVIRON_GET",
        "FROM_OS_ENVIRON_ITEM",
        "FROM_GETENV",
    }


def test_every_variable_the_code_reads_is_in_env_example():
    read = code_reads()

    # The settings, the web server's config and the demo bootstrap were all scanned.
    assert {"SECRET_KEY", "FIELD_ENCRYPTION_KEY", "WEB_CONCURRENCY", "DEMO_ADMIN_PASSWORD"} <= read
    assert sorted(read - documented()) == []


def test_every_variable_docker_compose_takes_from_the_environment_is_in_env_example():
    read = compose_reads()

    assert {"SECRET_KEY", "POSTGRES_PASSWORD"} <= read
    assert "HOSTNAME" not in read  # $$HOSTNAME: the container's own, for its health check
    assert sorted(read - documented()) == []


def test_env_example_names_nothing_that_neither_the_code_nor_docker_compose_reads():
    unread = documented() - code_reads() - compose_reads()

    assert sorted(unread) == []
