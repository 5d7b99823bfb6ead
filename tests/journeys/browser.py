"""A small browser for the journey tests: pages are read as a person reads them (links, forms,
badges, the history table) and forms are submitted the way a browser submits them.

Nothing here knows the application's views: a test finds a form on a rendered page, changes
some of its fields and submits it (with the page's CSRF token; the client enforces CSRF), so it
posts exactly what a browser would. The Django test client is the transport.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

# Seconds and requests per URL shape, for tuning how much the journeys check per step.
TIMINGS: Counter = Counter()
REQUESTS: Counter = Counter()

PASSWORD = "blina-demo-2026"  # seed_demo's password for every demo login
HOST = "testserver"


# --- Reading a page ------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    kind: str  # the input type, or "select" / "textarea"
    value: str = ""
    checked: bool = False
    required: bool = False
    disabled: bool = False
    options: list = field(default_factory=list)  # (value, label) of a select
    multiple: bool = False


@dataclass
class Button:
    text: str
    name: str = ""
    value: str = ""
    disabled: bool = False


@dataclass
class Form:
    action: str  # absolute path (with query) the form submits to
    method: str  # "get" or "post"
    fields: list = field(default_factory=list)
    buttons: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    enctype: str = ""

    def field(self, name) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self) -> list[str]:
        seen = []
        for f in self.fields:
            if f.name not in seen:
                seen.append(f.name)
        return seen

    @property
    def submittable(self) -> bool:
        """A person can submit it: some submit button is enabled, or, with no button at all, a
        text field to press Enter in (a view-only admin page's form has neither)."""
        if self.buttons:
            return any(not b.disabled for b in self.buttons)
        typed = {"text", "search", "email", "number", "password", "date", "url", "tel"}
        return any(f.kind in typed and not f.disabled for f in self.fields)

    def data(self) -> dict:
        """What a browser sends for the form as rendered: every enabled field's current value."""
        data = {}
        for f in self.fields:
            if f.disabled or f.kind in ("submit", "button", "reset", "image", "file"):
                continue
            if f.kind in ("checkbox", "radio"):
                if f.checked:
                    data[f.name] = f.value or "on"
                continue
            if f.kind == "select":
                if f.multiple:
                    data[f.name] = [v for v, _label, sel in f.options if sel]
                    continue
                chosen = [v for v, _label, sel in f.options if sel]
                first = f.options[0][0] if f.options else ""
                data[f.name] = chosen[0] if chosen else first
                continue
            data[f.name] = f.value
        return data

    def text(self) -> str:
        return " ".join(b.text for b in self.buttons)


@dataclass
class Link:
    href: str  # absolute path (with query)
    text: str
    attrs: dict = field(default_factory=dict)


# The case-state badges (registry/_case_state.html), each a <span> with one of these classes.
CASE_STATE_CLASSES = {"case-locked", "case-complete", "case-incomplete", "case-verified"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _Parser(HTMLParser):
    def __init__(self, base):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.forms: list[Form] = []
        self.links: list[Link] = []
        self.badges: list[dict] = []  # attrs of every element with data-crf and data-status
        self.tables: list[dict] = []  # {"attrs", "rows": [[cell text]]}
        self.alerts: list[tuple[str, str]] = []  # (class, text)
        self.invalid: list[str] = []  # names of fields marked is-invalid
        self.error_texts: list[str] = []  # invalid-feedback / errorlist texts
        self._form = None
        self._row = None  # data-study-id of the table row being read
        self.case_states: list[dict] = []  # the case-state badges: {"state", "row", "text"}
        self.keyed_rows: dict = {}  # data-study-id / data-site of a <tr> -> its table's rows
        self._state = None
        self._select = None
        self._option = None
        self._textarea = None
        self._button = None
        self._link = None
        self._table_stack = []
        self._cell = None
        self._alert = None
        self._alert_depth = 0
        self._error = None
        self._error_depth = 0

    def _url(self, raw):
        return absolute(self.base, raw)

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        classes = a.get("class", "").split()
        if tag not in VOID:
            if self._alert is not None:
                self._alert_depth += 1
            if self._error is not None:
                self._error_depth += 1
        if tag == "tr":
            self._row = a.get("data-study-id") or a.get("data-site")
            if self._row and self._table_stack:
                rows = self._table_stack[-1]["rows"]
                self.keyed_rows[self._row] = (rows, len(rows))  # the row about to start
        if "data-crf" in a and "data-status" in a:
            self.badges.append({**a, "row": self._row})
        state = CASE_STATE_CLASSES & set(classes)
        if state and self._state is None:
            self._state = {"state": state.pop(), "row": self._row, "text": ""}
            self.case_states.append(self._state)
        if tag == "form":
            self._form = Form(
                action=self._url(a.get("action") or self.base),
                method=(a.get("method") or "get").lower(),
                attrs=a,
                enctype=a.get("enctype", ""),
            )
            self.forms.append(self._form)
        elif tag == "a" and "href" in a:
            self._link = Link(self._url(a["href"]), "", a)
            self.links.append(self._link)
        elif tag == "table":
            self._table_stack.append({"attrs": a, "rows": []})
        elif tag == "tr" and self._table_stack:
            self._table_stack[-1]["rows"].append([])
        elif tag in ("td", "th") and self._table_stack and self._table_stack[-1]["rows"]:
            self._cell = [tag, ""]
            self._table_stack[-1]["rows"][-1].append(self._cell)
        if "alert" in classes and self._alert is None:
            self._alert, self._alert_depth = [" ".join(classes), ""], 0
        if ("invalid-feedback" in classes or "errorlist" in classes) and self._error is None:
            self._error, self._error_depth = [""], 0
        if "is-invalid" in classes and a.get("name"):
            self.invalid.append(a["name"])
        form = self._form
        if form is None:
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "image"):
                form.buttons.append(
                    Button(
                        a.get("value", "Submit"),
                        a.get("name", ""),
                        a.get("value", ""),
                        "disabled" in a,
                    )  # fmt: skip
                )
                return
            if not a.get("name"):
                return
            form.fields.append(
                Field(
                    a["name"],
                    kind,
                    a.get("value", "on" if kind in ("checkbox", "radio") else ""),
                    checked="checked" in a,
                    required="required" in a,
                    disabled="disabled" in a,
                )
            )
        elif tag == "select" and a.get("name"):
            self._select = Field(
                a["name"],
                "select",
                required="required" in a,
                disabled="disabled" in a,
                multiple="multiple" in a,
            )
            form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = [a.get("value"), "", "selected" in a]
            self._select.options.append(self._option)
        elif tag == "textarea" and a.get("name"):
            self._textarea = Field(
                a["name"], "textarea", required="required" in a, disabled="disabled" in a
            )
            form.fields.append(self._textarea)
        elif tag == "button":
            kind = (a.get("type") or "submit").lower()
            if kind == "submit":
                self._button = Button("", a.get("name", ""), a.get("value", ""), "disabled" in a)
                form.buttons.append(self._button)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self._alert is not None:
            if self._alert_depth == 0:
                self.alerts.append((self._alert[0], " ".join(self._alert[1].split())))
                self._alert = None
            else:
                self._alert_depth -= 1
        if self._error is not None:
            if self._error_depth == 0:
                self.error_texts.append(" ".join(self._error[0].split()))
                self._error = None
            else:
                self._error_depth -= 1
        if tag == "span" and self._state is not None:
            self._state["text"] = " ".join(self._state["text"].split())
            self._state = None
        if tag == "form":
            self._form = None
        elif tag == "a":
            self._link = None
        elif tag == "select":
            self._select = None
        elif tag == "option" and self._option is not None:
            if self._option[0] is None:
                self._option[0] = self._option[1].strip()
            self._option = None
        elif tag == "textarea" and self._textarea is not None:
            self._textarea.value = self._textarea.value.removeprefix("\n")
            self._textarea = None
        elif tag == "button":
            self._button = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table" and self._table_stack:
            self.tables.append(self._table_stack.pop())

    def handle_data(self, data):
        if self._state is not None:
            self._state["text"] += data
        if self._option is not None:
            self._option[1] += data
        if self._textarea is not None:
            self._textarea.value += data
        if self._button is not None:
            self._button.text = (self._button.text + " " + data).strip()
        if self._link is not None:
            self._link.text = " ".join((self._link.text + " " + data).split())
        if self._cell is not None:
            self._cell[1] += data
        if self._alert is not None:
            self._alert[1] += " " + data
        if self._error is not None:
            self._error[0] += " " + data


def absolute(base, raw) -> str:
    """A same-site URL as a path with query (no fragment); other sites' URLs unchanged."""
    joined = urljoin(f"http://{HOST}{base}", unescape(raw))
    parts = urlsplit(joined)
    if parts.netloc != HOST:
        return joined
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Page:
    url: str
    status: int
    html: str
    location: str = ""
    content_type: str = ""

    def __post_init__(self):
        self._parsed = None

    @property
    def parsed(self) -> _Parser:
        if self._parsed is None:
            self._parsed = _Parser(self.url)
            if "html" in self.content_type:
                self._parsed.feed(self.html)
                self._parsed.close()
        return self._parsed

    @property
    def forms(self) -> list[Form]:
        return self.parsed.forms

    @property
    def links(self) -> list[Link]:
        return self.parsed.links

    def form(self, action_contains="", method="post", **attrs) -> Form | None:
        for f in self.forms:
            if f.method != method or action_contains not in f.action:
                continue
            if all(f.attrs.get(k) == v for k, v in attrs.items()):
                return f
        return None

    def forms_to(self, pattern, method="post") -> list[Form]:
        return [f for f in self.forms if f.method == method and re.search(pattern, f.action)]

    def links_to(self, pattern) -> list[Link]:
        return [link for link in self.links if re.search(pattern, link.href)]

    def table(self, css_class=None, id=None) -> dict | None:
        for t in self.parsed.tables:
            classes = t["attrs"].get("class", "").split()
            if (css_class is None or css_class in classes) and (
                id is None or t["attrs"].get("id") == id
            ):
                return t
        return None

    def rows(self, css_class=None, id=None) -> list[list[str]]:
        """Body rows of a table as cell texts (a cell spanning columns is one text)."""
        t = self.table(css_class, id)
        if t is None:
            return []
        return [[" ".join(text.split()) for tag, text in r] for r in t["rows"]
                if r and r[0][0] == "td"]  # fmt: skip

    @property
    def badges(self) -> list[dict]:
        return self.parsed.badges

    def row(self, key) -> list[str]:
        """The cell texts of the table row with data-study-id or data-site `key`."""
        rows, index = self.parsed.keyed_rows.get(key, ([], 0))
        if index >= len(rows):
            return []
        return [" ".join(text.split()) for _tag, text in rows[index]]

    def case_state(self, row=None) -> dict:
        """{state class: badge text} of the case-state badges (in table row `row`)."""
        return {s["state"]: s["text"] for s in self.parsed.case_states
                if row is None or s["row"] == row}  # fmt: skip

    @property
    def alerts(self) -> list[tuple[str, str]]:
        return self.parsed.alerts

    def alert_texts(self, kind="") -> list[str]:
        return [text for cls, text in self.alerts if kind in cls]

    @property
    def has_field_errors(self) -> bool:
        return bool(self.parsed.invalid or self.parsed.error_texts) or bool(
            self.alert_texts("alert-danger")
        )

    @property
    def text(self) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", self.html).split())


# --- A person at a browser -------------------------------------------------------------------


class Person:
    """One logged-in user with their own cookies (a browser profile)."""

    def __init__(self, username, password=PASSWORD):
        self.username = username
        self.password = password
        # CSRF is enforced: every POST carries the token of the page its form came from.
        self.client = Client(enforce_csrf_checks=True, raise_request_exception=True)
        self.requests = 0

    def __repr__(self):
        return f"<{self.username}>"

    def log_in(self):
        """Log in through the log-in page, then the two-factor page when it is asked for."""
        page = self.get("/accounts/login/")
        form = page.form("/accounts/login/")
        assert form is not None, "no log-in form"
        response = self.submit(form, {"username": self.username, "password": self.password})
        assert response.status == 302, f"{self.username} cannot log in ({response.status})"
        target = response.location
        landing = self.get(target)
        if landing.status == 302 and "/accounts/2fa/verify/" in landing.location:
            page = self.get(landing.location)
            form = page.form("/accounts/2fa/verify/")
            response = self.submit(form, {"token": current_totp(self.username)})
            assert response.status == 302, f"{self.username}: the TOTP code was refused"
            target = response.location
        return target

    def _page(self, url, response) -> Page:
        self.requests += 1
        content_type = response.get("Content-Type", "")
        if getattr(response, "streaming", False):
            body = b"".join(response.streaming_content)
        else:
            body = response.content
        text = body.decode("utf-8", "replace") if "html" in content_type else ""
        page = Page(url, response.status_code, text, response.get("Location", ""), content_type)
        page.body = body
        if page.location:
            page.location = absolute(url, page.location)
        return page

    def get(self, url, **params) -> Page:
        started = time.perf_counter()
        page = self._page(url, self.client.get(url, params or None))
        _timed("GET", url, started)
        return page

    def post(self, url, data, **extra) -> Page:
        started = time.perf_counter()
        page = self._page(url, self.client.post(url, data, **extra))
        _timed("POST", url, started)
        return page

    def submit(self, form: Form, changes=None, drop=()) -> Page:
        """Submit `form` with some fields changed (`None` unticks a checkbox / leaves a field
        out, as a browser leaves out an unticked box) and `drop` fields left out."""
        data = form.data()
        for name, value in (changes or {}).items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        for name in drop:
            data.pop(name, None)
        if form.method == "get":
            return self.get(form.action.split("?")[0], **data)
        return self.post(form.action, data)

    def follow(self, page: Page) -> Page:
        while page.status in (301, 302, 303) and page.location:
            page = self.get(page.location)
        return page


def _timed(method, url, started):
    path = re.sub(r"/\d+", "/N", url.split("?")[0])
    shape = f"{method} {path}"
    TIMINGS[shape] += time.perf_counter() - started
    REQUESTS[shape] += 1


def current_totp(username) -> str:
    """The code the user's authenticator app shows now, or the next one when this one was used
    already: django-otp refuses a time step it has accepted before (replay protection), and it
    accepts the next step (tolerance). Two log-ins of one user within 30 s would otherwise fail."""
    device = TOTPDevice.objects.get(user__username=username, confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    steps_ahead = device.last_t + 1 - totp.t()
    if steps_ahead > device.tolerance:  # a third log-in within one step: wait for the clock
        time.sleep(device.step * (steps_ahead - device.tolerance))
        steps_ahead = device.last_t + 1 - totp.t()
    if steps_ahead > 0:
        totp.time = time.time() + device.step * steps_ahead
    return str(totp.token()).zfill(device.digits)
