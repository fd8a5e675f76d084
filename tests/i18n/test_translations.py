"""Simplified Chinese: the catalog is complete, compiled, and the key pages speak it.

The catalog lives in locale/zh_Hans/LC_MESSAGES/django.po; `make messages` refreshes it and
compiles the .mo file that is committed (so running the app needs no gettext).
"""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from django.test import Client

from tests.conftest import ROOT, require

LOCALE_DIR = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
PO = LOCALE_DIR / "django.po"
MO = LOCALE_DIR / "django.mo"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
# The same exclusions as the makemessages command of the Makefile and the catalog's README.
NOT_SCANNED = {".venv", "data", "node_modules", "tests", "locale"}


# -- a tiny .po reader ---------------------------------------------------------------------
@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int | None, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)
    obsolete: bool = False

    @property
    def where(self) -> str:
        return " ".join(self.references[:3]) or "?"


def po_entries(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """Return the header fields and the (non-header) entries of a .po file."""
    entries: list[Entry] = []
    entry = Entry()
    started = False
    target: tuple[str, int | None] | None = None

    def flush() -> None:
        nonlocal entry, started, target
        if started:
            entries.append(entry)
        entry, started, target = Entry(), False, None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#~"):
            entry.obsolete = True
            started = True
            continue
        if line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#:"):
            entry.references += line[2:].split()
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$', line)
        if match:
            keyword, index, text = match.groups()
            started = True
            if keyword == "msgstr":
                target = ("msgstr", int(index) if index is not None else None)
                entry.msgstr[target[1]] = ast.literal_eval(text)
            else:
                target = (keyword, None)
                setattr(entry, keyword, ast.literal_eval(text))
            continue
        assert line.startswith('"') and target is not None, f"{path}: cannot read {raw!r}"
        if target[0] == "msgstr":
            entry.msgstr[target[1]] += ast.literal_eval(line)
        else:
            setattr(entry, target[0], (getattr(entry, target[0]) or "") + ast.literal_eval(line))
    flush()

    header_entry = next(e for e in entries if e.msgid == "" and e.msgctxt is None)
    header = dict(
        line.split(": ", 1) for line in header_entry.msgstr.get(None, "").splitlines() if ": " in line
    )
    return header, [e for e in entries if e is not header_entry]


def untranslated(entries: list[Entry]) -> list[str]:
    """Describe the live entries that are empty or fuzzy."""
    problems = []
    for entry in entries:
        if entry.obsolete:
            continue
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry.msgid!r} ({entry.where})")
        elif not entry.msgstr or any(not text.strip() for text in entry.msgstr.values()):
            problems.append(f"untranslated: {entry.msgid!r} ({entry.where})")
    return problems


PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_]\w*\))?[#0 +-]*\d*(?:\.\d+)?[sdifr%]")
TAG = re.compile(r"</?[A-Za-z][^>]*>")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


# -- the catalog ---------------------------------------------------------------------------
def test_it_has_a_simplified_chinese_catalog_with_one_plural_form():
    header, entries = po_entries(PO)

    assert header["Language"] == "zh_Hans"
    assert header["Plural-Forms"].replace(" ", "").rstrip(";") == "nplurals=1;plural=0"
    assert "charset=UTF-8" in header["Content-Type"]
    assert len([entry for entry in entries if not entry.obsolete]) > 300


def test_it_translates_every_message_and_leaves_nothing_fuzzy():
    _header, entries = po_entries(PO)

    assert untranslated(entries) == []


def test_it_gives_plural_messages_exactly_one_form():
    _header, entries = po_entries(PO)

    plurals = [entry for entry in entries if entry.msgid_plural is not None and not entry.obsolete]
    assert plurals, "the catalog has plural messages (model counts, pending users, throttling)"
    for entry in plurals:
        assert list(entry.msgstr) == [0], f"{entry.msgid!r} needs only msgstr[0] in Chinese"


def test_it_keeps_every_placeholder_and_html_tag_of_the_english_text():
    _header, entries = po_entries(PO)

    for entry in entries:
        if entry.obsolete:
            continue
        # Chinese has one form: it must say what the English plural says (e.g. %(counter)s).
        source = entry.msgid_plural if entry.msgid_plural is not None else entry.msgid
        for text in entry.msgstr.values():
            assert placeholders(text) == placeholders(source), f"{entry.msgid!r} → {text!r}"
            assert TAG.findall(text) == TAG.findall(source), f"{entry.msgid!r} → {text!r}"


def test_it_compiles_the_catalog_that_is_committed():
    """The .mo that `make run` loads says what the .po says (git keeps no mtimes: compare)."""
    _header, entries = po_entries(PO)
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)

    for entry in entries:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        if entry.msgid_plural is not None:
            got = (
                compiled.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, 5)
                if entry.msgctxt
                else compiled.ngettext(entry.msgid, entry.msgid_plural, 5)
            )
            assert got == entry.msgstr[0], f"django.mo is stale for {entry.msgid!r}: run make messages"
        else:
            got = (
                compiled.pgettext(entry.msgctxt, entry.msgid)
                if entry.msgctxt
                else compiled.gettext(entry.msgid)
            )
            assert got == entry.msgstr[None], f"django.mo is stale for {entry.msgid!r}: run make messages"


def test_it_passes_msgfmt_checks():
    msgfmt = shutil.which("msgfmt")
    require(msgfmt is not None, "gettext's msgfmt (make test installs Debian's gettext)")
    result = subprocess.run(
        [msgfmt, "--check", "--output-file", os.devnull, str(PO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_it_has_every_translatable_string_of_the_code_in_the_catalog(tmp_path):
    """Run makemessages on a copy of the sources: new strings would show up untranslated."""
    require(
        shutil.which("xgettext") is not None and shutil.which("msgmerge") is not None,
        "gettext's xgettext and msgmerge (make test installs Debian's gettext)",
    )

    def skipped(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(ROOT)
        out = set()
        for name in names:
            path = Path(directory) / name
            if name.startswith(".") or name == "__pycache__":
                out.add(name)
            elif relative == Path(".") and name in NOT_SCANNED:
                out.add(name)
            elif relative == Path("static") and name == "vendor":
                out.add(name)
            elif path.is_file() and path.suffix not in {".py", ".html", ".txt", ".js"}:
                out.add(name)
        return out

    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=skipped)
    shutil.copytree(ROOT / "locale", copy / "locale")
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webui.settings",
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--ignore=static/vendor"],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    _header, entries = po_entries(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert untranslated(entries) == [], "new UI strings: run `make messages` and translate them"
    _header, committed = po_entries(PO)
    assert live_ids(entries) == live_ids(committed), "the catalog is out of date: run `make messages`"


def live_ids(entries: list[Entry]) -> set[tuple[str | None, str]]:
    return {(entry.msgctxt, entry.msgid) for entry in entries if not entry.obsolete}


# -- pages ---------------------------------------------------------------------------------
def assert_chinese(html: str, chinese: list[str], english: list[str]) -> None:
    assert '<html lang="zh-hans"' in html
    for text in chinese:
        assert text in html, f"missing {text!r}"
    for text in english:
        assert text not in html, f"still English: {text!r}"


def test_it_shows_the_chat_page_in_chinese(user_client, ollama):
    response = user_client.get("/", **ZH)

    assert response.status_code == 200
    assert_chinese(
        response.content.decode(),
        chinese=[
            "新对话",
            "搜索对话",
            "有什么可以帮你的？",
            ">发送<",
            ">停止<",
            "按 Enter 发送，Shift+Enter 换行。",
            "退出登录",
            "正在等待 Ollama…",
            "重新生成",
        ],
        english=[
            ">New chat<",
            ">Send<",
            ">Stop<",
            "Enter to send",
            "What can I help with?",
            ">Log out<",
            ">Regenerate<",
            "Waiting for Ollama",
        ],
    )


def test_it_shows_the_login_page_in_chinese(db):
    response = Client().get("/accounts/login/", **ZH)

    assert response.status_code == 200
    assert_chinese(
        response.content.decode(),
        chinese=['<h1 id="login-title">登录</h1>', "用户名", "密码"],
        english=[">Log in<", "Username", "Password"],
    )


def test_it_shows_the_models_dashboard_in_chinese(admin_client, ollama):
    response = admin_client.get("/models/", **ZH)

    assert response.status_code == 200
    assert_chinese(
        response.content.decode(),
        chinese=["<h1>模型</h1>", "拉取模型", "已安装", "当前已加载", "审计日志", ">拉取<", "要拉取的模型"],
        english=[">Pull a model<", ">Installed<", ">Loaded now<", ">Audit log<", ">Pull<", "Model to pull"],
    )


def test_it_shows_the_users_page_in_chinese(admin_client, pending_user):
    response = admin_client.get("/users/", **ZH)

    assert response.status_code == 200
    assert_chinese(
        response.content.decode(),
        chinese=[
            "用户名",
            "上次登录",
            "待审批",
            ">批准<",
            ">拒绝<",
            "新账号会在这里等待管理员审批。",
            "1 个待审批",
        ],
        english=[
            ">User name<",
            ">Last login<",
            ">Approve<",
            ">Reject<",
            "Pending approval",
            "New accounts wait",
        ],
    )


def test_it_keeps_english_for_english_readers(db):
    html = Client().get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="en"' in html
    assert ">Log in<" in html and "登录" not in html


# -- words that come from elsewhere: Ollama's progress lines, the audit log, settings values --
def test_it_says_ollamas_progress_lines_in_chinese():
    from django.utils import translation

    from models_admin.templatetags.models_admin import ollama_status, ollama_status_patterns

    with translation.override("zh-hans"):
        assert ollama_status("pulling manifest") == "正在拉取清单"
        assert ollama_status("pulling 2e352627f88e") == "正在拉取 2e352627f88e"
        assert ollama_status("verifying sha256 digest") == "正在校验 sha256 摘要"
        assert ollama_status("writing manifest") == "正在写入清单"
        assert ollama_status("success") == "成功"
        assert ollama_status("quantizing F16 model to Q4_K_M") == "正在将 F16 模型量化为 Q4_K_M"
        assert ollama_status("a line from a future Ollama") == "a line from a future Ollama"
        patterns = dict(ollama_status_patterns())
    assert patterns["pulling manifest"] == "正在拉取清单"
    with translation.override("en"):
        assert ollama_status("pulling 2e352627f88e") == "pulling 2e352627f88e"


def test_it_gives_models_js_the_progress_words_in_chinese(admin_client, ollama):
    html = admin_client.get("/models/", **ZH).content.decode()

    patterns = html.split('id="ollama-statuses"')[1].split("</script>")[0]
    assert '"\\u6b63\\u5728\\u62c9\\u53d6\\u6e05\\u5355"' in patterns  # "正在拉取清单", JSON-escaped


def test_it_says_audit_details_in_chinese():
    from django.utils import translation

    from models_admin.templatetags.models_admin import audit_detail

    with translation.override("zh-hans"):
        assert audit_detail("started #12") == "已开始 #12"
        assert audit_detail("started #12 from hf.co/x") == "已开始 #12，来源：hf.co/x"
        assert audit_detail("joined #3 on gpu-2") == "已加入 #3 · 服务器 gpu-2"
        assert audit_detail("pull #4") == "拉取 #4"
        assert audit_detail("pull model manifest: file does not exist") == (
            "pull model manifest: file does not exist"
        )


def test_it_shows_settings_values_and_sources_in_chinese(admin_client):
    html = admin_client.get("/settings/", **ZH).content.decode()

    debug_row = html.split('data-setting="DEBUG"')[1].split("</tr>")[0]
    assert "<code>关</code>" in debug_row and ">off<" not in debug_row
    assert ">来源<" in html  # the column header, in the settings sense of "From"


def test_it_names_model_capabilities_in_chinese(admin_client, ollama):
    html = admin_client.get("/models/llama3.2:latest/", **ZH).content.decode()

    assert "工具调用" in html and ">tools<" not in html
