"""Who may open which URL: the explicit table the URL walk (test_url_access.py) checks.

Every URL name of the root URLconf must have an entry in RULES (the admin's are covered by one
generic rule): a new URL without a rule fails the walk, so whoever adds a view also says who may
reach it. Each entry says how to build the URL's kwargs (the objects it opens, each tagged with
its site, or MISSING for a guessed ID that matches nothing) and, per method, what each role gets:

  OK         reached: any answer that is not a refusal (200, a redirect elsewhere, 400 form errors)
  LOGIN      a redirect to a log-in page (the site's, or the admin's)
  UNAUTH     401 (the API without credentials)
  FORBIDDEN  403          NOT_FOUND  404 (another site's case, a guessed ID)
  NOT_ALLOWED 405 (a method the view does not take: nothing is read or changed)

The roles are in conftest.ROLE_SPECS: the KR01 investigator (its principal investigator),
statistician and monitor, a superuser, an investigator and a monitor of KR02 (another site), and
an anonymous visitor. Every object a URL opens belongs to KR01 (or to no site).
"""

import re
import uuid
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver, reverse

OK, LOGIN, UNAUTH, FORBIDDEN, NOT_FOUND, NOT_ALLOWED = (
    "ok",
    "login",
    "401",
    "403",
    "404",
    "405",
)
MISSING = "missing"  # a target that matches no object: a guessed ID
MISSING_RECORD = "missing-record"  # the home case with a guessed (or another case's) record
NO_SITE = None
GUESSED_PK = 987654321


@dataclass(frozen=True)
class Target:
    kwargs: dict
    site: str | None = NO_SITE  # "KR01", NO_SITE, or MISSING
    args: tuple = ()  # for regex routes with unnamed groups (simple-history's admin)


def classify(response) -> str:
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response.get("Location", "")
        if re.match(r"^(https?://[^/]+)?/(accounts|admin)/login/", location):
            return LOGIN
        return OK
    return {401: UNAUTH, 403: FORBIDDEN, 404: NOT_FOUND, 405: NOT_ALLOWED}.get(
        status, "5xx" if status >= 500 else OK
    )


# --- Policies: (role, target) -> the outcomes allowed --------------------------------------------


def anyone(*outcomes):
    return lambda role, target: set(outcomes)


PUBLIC = anyone(OK)


def logged_in(anon=LOGIN, then=OK):
    return lambda role, target: {anon} if role.anonymous else {then}


def role_gate(*tags, refused=FORBIDDEN, anon=LOGIN, staff=False, then=OK):
    """Users holding one of `tags` at any site (or superusers; or staff if `staff`) reach it.
    A guessed ID is checked only after the role, so it is a 404 for them alone."""

    def policy(role, target):
        if role.anonymous:
            return {anon}
        if not (role.superuser or role.has_anywhere(*tags) or (staff and role.staff)):
            return {refused}
        return {NOT_FOUND} if target.site == MISSING else {then}

    return policy


def scoped(*allowed, visible=(), inside=FORBIDDEN, anon=LOGIN, superuser=OK):
    """Objects of a site: holders of `allowed` tags at the object's site reach them; holders of
    `visible` tags there see the object exists but are refused (403); anybody else gets a 404,
    as does everyone for a guessed ID. A guessed record of a case they may open is a 404 for
    those allowed (the others are refused at the case, as for any record)."""

    def policy(role, target):
        if role.anonymous:
            return {anon}
        if target.site == MISSING:
            return {NOT_FOUND}
        site = "KR01" if target.site == MISSING_RECORD else target.site
        tags = role.tags_at(site)
        if role.superuser:
            outcome = superuser
        elif tags & set(allowed):
            outcome = OK
        elif tags & set(visible):
            outcome = inside
        else:
            outcome = NOT_FOUND
        return {NOT_FOUND if outcome == OK and target.site == MISSING_RECORD else outcome}

    return policy


def post_only(role, target):
    """GET on a POST-only view: log in first, then 405 for everybody (nothing is read)."""
    return {LOGIN} if role.anonymous else {NOT_ALLOWED}


# Web pages of a case: investigators and monitors of its site read it; only its investigators
# change it (a monitor raises queries instead).
CASE_READ = scoped("investigator", "monitor")
CASE_WRITE = scoped("investigator", visible=("monitor",))
MONITOR_OF_CASE = scoped("monitor", visible=("investigator",))
MONITOR_OF_SITE = scoped("monitor")  # a site's monitoring pages: anybody else gets a 404
ANALYST = role_gate("statistician", "monitor")
# Analysis runs cover every site: statisticians and superusers (the world's monitors each
# monitor one site of two, so they are refused; registry.access.can_run_analyses).
RUNS = role_gate("statistician")
# Signing a case: its site's principal investigator only (a superuser is not one).
SIGN = scoped("pi", visible=("investigator", "monitor"), superuser=FORBIDDEN)


# The REST API: 401 without credentials; statisticians read every site (de-identified).
def api_read(role, target):
    if role.anonymous:
        return {UNAUTH}
    if target.site == MISSING:
        return {NOT_FOUND}
    if role.superuser or role.has_anywhere("statistician"):
        return {OK}
    return {OK} if role.tags_at(target.site) & {"investigator", "monitor"} else {NOT_FOUND}


def api_writer(role):
    return role.superuser or role.has_anywhere("investigator")


def api_create(role, target):
    if role.anonymous:
        return {UNAUTH}
    return {OK} if api_writer(role) else {FORBIDDEN}


def api_update(role, target):
    """PATCH a record: the write permission comes first (403), then the object lookup (404)."""
    if role.anonymous:
        return {UNAUTH}
    if not api_writer(role):
        return {FORBIDDEN}
    if target.site == MISSING:
        return {NOT_FOUND}
    if role.superuser or "investigator" in role.tags_at(target.site):
        return {OK}
    return {NOT_FOUND}


def api_detail_post(role, target):
    if role.anonymous:
        return {UNAUTH}
    return {NOT_ALLOWED} if api_writer(role) else {FORBIDDEN}


# The admin: staff only. Anybody else is sent to the admin's log-in page; staff get whatever
# their model permissions and site scope give them (never a crash). test_url_access checks
# separately that a monitor's changelists and change forms hold only their sites' objects.
def admin_staff(role, target):
    if role.anonymous or not role.staff:
        return {LOGIN}
    return {OK, FORBIDDEN, NOT_FOUND, NOT_ALLOWED}


# --- kwargs builders: world -> [Target] -----------------------------------------------------------


def no_kwargs(w):
    return [Target({})]


def case(w):
    return [Target({"pk": w.home.pk}, "KR01"), Target({"pk": GUESSED_PK}, MISSING)]


def _choices(converter_name):
    from django.urls.converters import get_converters

    return list(get_converters()[converter_name].values)


def case_and(converter_name, kwarg):
    def build(w):
        return [
            Target({**t.kwargs, kwarg: value}, t.site)
            for t in case(w)
            for value in _choices(converter_name)
        ]

    return build


def case_record(w):
    targets = []
    for kind, record_pk in w.home_records.items():
        targets.append(Target({"pk": w.home.pk, "kind": kind, "record_pk": record_pk}, "KR01"))
        # the home case with another case's record, and a record that does not exist
        other = w.foreign_records[kind]
        targets.append(Target({"pk": w.home.pk, "kind": kind, "record_pk": other}, MISSING_RECORD))
        targets.append(Target({"pk": GUESSED_PK, "kind": kind, "record_pk": record_pk}, MISSING))
    return targets


def run(w):
    return [Target({"run_id": w.run.pk}), Target({"run_id": uuid.uuid4()}, MISSING)]


def run_file(w):
    return [
        Target({"run_id": w.run.pk, "filename": "table1.csv"}),
        Target({"run_id": w.run.pk, "filename": "settings.py"}, MISSING),
        Target({"run_id": uuid.uuid4(), "filename": "table1.csv"}, MISSING),
    ]


def run_table(w):
    return [
        Target({"run_id": w.run.pk, "key": "table1"}),
        Target({"run_id": w.run.pk, "key": "settings"}, MISSING),
        Target({"run_id": uuid.uuid4(), "key": "table1"}, MISSING),
    ]


def site_code(w):
    return [Target({"code": "KR01"}, "KR01"), Target({"code": "ZZ99"}, MISSING)]


def query(w):
    return [Target({"pk": w.query.pk}, "KR01"), Target({"pk": GUESSED_PK}, MISSING)]


def finding(w):
    """An edit-check finding of the home case (made again here: walking run_checks re-ran the
    edit checks, which removed the test's finding)."""
    from monitoring.models import Finding

    found, _ = Finding.objects.get_or_create(
        key=w.finding.key,
        defaults={"rule": "test", "patient": w.home, "crf": "baseline", "message": "Check"},
    )
    return [Target({"pk": found.pk}, "KR01"), Target({"pk": GUESSED_PK}, MISSING)]


def site_archive(w):
    """A built case-book archive of KR01 (its zip written where the download reads it)."""
    from casebook.models import SiteArchive

    archive = SiteArchive.objects.filter(institution__code="KR01").first()
    if archive is None:
        archive = SiteArchive.objects.create(
            institution=w.home.institution, status=SiteArchive.SUCCEEDED
        )
        archive.path.parent.mkdir(parents=True, exist_ok=True)
        archive.path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    return [
        Target({"archive_id": archive.pk}, "KR01"),
        Target({"archive_id": uuid.uuid4()}, MISSING),
    ]


def export_job(w):
    """A finished background export of the statistician (its file written where the download
    reads it): only the user who asked for it reaches it."""
    from exchange.models import ExportJob

    job = ExportJob.objects.filter(requested_by=w.roles["statistician"].user).first()
    if job is None:
        job = ExportJob.objects.create(
            kind=ExportJob.TEMPLATE,
            requested_by=w.roles["statistician"].user,
            scope="registry",
            status=ExportJob.SUCCEEDED,
        )
        job.path.parent.mkdir(parents=True, exist_ok=True)
        job.path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    return [Target({"job_id": job.pk}), Target({"job_id": uuid.uuid4()}, MISSING)]


def owner_only(owner, then=OK):
    """A user's own object: its owner reaches it; anybody else gets a 404, as for a guess."""

    def policy(role, target):
        if role.anonymous:
            return {LOGIN}
        if role.name == owner and target.site != MISSING:
            return {then}
        return {NOT_FOUND}

    return policy


def reset_link(w):
    """A password-reset link (an invalid token: the page says so)."""
    return [Target({"uidb64": "MQ", "token": "set-password"})]


def api_record(field):
    """A detail URL of the API: the home case's record (by study ID or by pk), or a guess."""

    def build(w):
        if field == "study_id":
            return [
                Target({"study_id": w.home.study_id}, "KR01"),
                Target({"study_id": "ZZ99-999"}, MISSING),
            ]
        return [Target({"pk": w.home_records[field]}, "KR01"), Target({"pk": GUESSED_PK}, MISSING)]

    return build


@dataclass(frozen=True)
class Rule:
    build: object = no_kwargs
    get: object = PUBLIC
    post: object = PUBLIC
    patch: object = None  # also PATCH (API detail endpoints)


API_LIST = Rule(get=logged_in(anon=UNAUTH), post=api_create)


def API_DETAIL(field):  # noqa: N802 - reads like the constants above
    return Rule(api_record(field), get=api_read, post=api_detail_post, patch=api_update)


LOGGED_IN = Rule(get=logged_in(), post=logged_in())

RULES = {
    # accounts and the second factor
    "login": Rule(),
    "logout": Rule(get=anyone(NOT_ALLOWED), post=anyone(LOGIN)),
    "security:two_factor_verify": LOGGED_IN,
    "security:two_factor_setup": LOGGED_IN,
    # registry: case list, registration, the case page and its CRFs
    "registry:case_list": LOGGED_IN,
    "registry:register": Rule(
        get=role_gate("investigator", refused=NOT_FOUND),
        post=role_gate("investigator", refused=NOT_FOUND),
    ),
    "registry:case": Rule(case, get=CASE_READ, post=CASE_WRITE),
    "registry:derive_response": Rule(case, get=CASE_READ, post=CASE_WRITE),
    "registry:crf_complete": Rule(case_and("crf", "crf"), get=CASE_READ, post=CASE_WRITE),
    "registry:single_record": Rule(case_and("record", "kind"), get=CASE_READ, post=CASE_WRITE),
    # a new record and a removal are pages for a change only: a monitor is refused on GET too
    "registry:record_new": Rule(case_and("records", "kind"), get=CASE_WRITE, post=CASE_WRITE),
    "registry:record_edit": Rule(case_record, get=CASE_READ, post=CASE_WRITE),
    "registry:record_remove": Rule(case_record, get=CASE_WRITE, post=CASE_WRITE),
    # analyses: statisticians (every site's data, de-identified), monitors of every site and
    # superusers; a monitor of some sites gets the page and their sites' dataset, no run
    "analysis:dashboard": Rule(get=ANALYST, post=ANALYST),
    "analysis:dataset_csv": Rule(
        get=ANALYST, post=role_gate("statistician", "monitor", then=NOT_ALLOWED)
    ),
    "analysis:start_run": Rule(get=role_gate("statistician", then=NOT_ALLOWED), post=RUNS),
    "analysis:run_detail": Rule(run, get=RUNS, post=RUNS),
    "analysis:run_status": Rule(run, get=RUNS, post=RUNS),
    "analysis:download": Rule(run_file, get=RUNS, post=RUNS),
    "analysis:table_csv": Rule(run_table, get=RUNS, post=RUNS),
    # monitoring: a site's monitors; answering queries and signing are the investigators'
    "monitoring:progress": Rule(
        get=role_gate("monitor", staff=True), post=role_gate("monitor", staff=True)
    ),
    "monitoring:site": Rule(site_code, get=MONITOR_OF_SITE, post=MONITOR_OF_SITE),
    "monitoring:run_checks": Rule(site_code, get=post_only, post=MONITOR_OF_SITE),
    "monitoring:query_all": Rule(site_code, get=post_only, post=MONITOR_OF_SITE),
    "monitoring:site_lock": Rule(site_code, get=post_only, post=MONITOR_OF_SITE),
    "monitoring:site_unlock": Rule(site_code, get=post_only, post=MONITOR_OF_SITE),
    "monitoring:finding_query": Rule(finding, get=post_only, post=MONITOR_OF_SITE),
    "monitoring:query_new": Rule(case, get=MONITOR_OF_CASE, post=MONITOR_OF_CASE),
    "monitoring:crf_verify": Rule(case_and("crf", "crf"), get=post_only, post=MONITOR_OF_CASE),
    "monitoring:crf_unverify": Rule(case_and("crf", "crf"), get=post_only, post=MONITOR_OF_CASE),
    "monitoring:case_lock": Rule(case, get=post_only, post=MONITOR_OF_CASE),
    "monitoring:case_unlock": Rule(case, get=post_only, post=MONITOR_OF_CASE),
    "monitoring:sign": Rule(case, get=SIGN, post=SIGN),
    "monitoring:query_answer": Rule(
        query, get=post_only, post=scoped("investigator", visible=("monitor",))
    ),
    "monitoring:query_close": Rule(query, get=post_only, post=MONITOR_OF_CASE),
    "monitoring:query_reopen": Rule(query, get=post_only, post=MONITOR_OF_CASE),
    # case books: a case's PDF for whoever reads the case; a site's archives for the people who
    # read every case of the site (registry.access.archive_institutions_for)
    "casebook:case_pdf": Rule(case, get=CASE_READ, post=logged_in(then=NOT_ALLOWED)),
    "casebook:site_archives": Rule(site_code, get=CASE_READ, post=CASE_READ),
    "casebook:archive_status": Rule(site_archive, get=CASE_READ, post=logged_in(then=NOT_ALLOWED)),
    "casebook:archive_download": Rule(
        site_archive, get=CASE_READ, post=logged_in(then=NOT_ALLOWED)
    ),
    # the profile (e-mail preferences) and the password reset (public, throttled)
    "notifications:profile": LOGGED_IN,
    "password_reset": Rule(),
    # the language switcher (POST only; anyone) and the JavaScript catalogue (public)
    "set_language": Rule(get=anyone(NOT_ALLOWED)),
    "javascript-catalog": Rule(post=anyone(NOT_ALLOWED)),
    "password_reset_done": Rule(post=anyone(NOT_ALLOWED)),
    "password_reset_confirm": Rule(reset_link),
    "password_reset_complete": Rule(post=anyone(NOT_ALLOWED)),
    # data exchange pages: documentation for anyone logged in, imports for investigators
    "exchange:index": LOGGED_IN,
    "exchange:import": Rule(get=role_gate("investigator"), post=role_gate("investigator")),
    "exchange:template": LOGGED_IN,
    "exchange:template_zip": LOGGED_IN,
    "exchange:template_xlsx": LOGGED_IN,
    "exchange:codebook": LOGGED_IN,
    "exchange:codebook_csv": LOGGED_IN,
    "exchange:odm": LOGGED_IN,  # its content is scoped: see tests/exchange/test_odm.py
    "exchange:api_token": LOGGED_IN,
    # the cases of one's own sites in the template's format; background exports: a page for
    # anyone logged in (starting one needs a kind the user may start), each job its owner's only
    "exchange:cases_zip": Rule(
        get=role_gate("investigator", "monitor"), post=logged_in(then=NOT_ALLOWED)
    ),
    "exchange:exports": Rule(get=logged_in(), post=logged_in(then=FORBIDDEN)),
    "exchange:export_status": Rule(
        export_job,
        get=owner_only("statistician"),
        post=logged_in(then=NOT_ALLOWED),
    ),
    "exchange:export_download": Rule(
        export_job,
        get=owner_only("statistician"),
        post=logged_in(then=NOT_ALLOWED),
    ),
    # the REST API
    "exchange:api_token_obtain": Rule(get=anyone(NOT_ALLOWED), post=PUBLIC),
    "exchange:api-root": Rule(
        get=logged_in(anon=UNAUTH), post=logged_in(anon=UNAUTH, then=NOT_ALLOWED)
    ),
    "exchange:api_schema": Rule(
        get=logged_in(anon=UNAUTH), post=logged_in(anon=UNAUTH, then=NOT_ALLOWED)
    ),
    "exchange:api_docs": Rule(
        get=logged_in(anon=UNAUTH), post=logged_in(anon=UNAUTH, then=NOT_ALLOWED)
    ),
    "exchange:patients-list": API_LIST,
    "exchange:patients-detail": API_DETAIL("study_id"),
    "exchange:baselines-list": API_LIST,
    "exchange:baselines-detail": API_DETAIL("study_id"),
    "exchange:cycles-list": API_LIST,
    "exchange:cycles-detail": API_DETAIL("cycles"),
    "exchange:response-assessments-list": API_LIST,
    "exchange:response-assessments-detail": API_DETAIL("assessments"),
    "exchange:adverse-events-list": API_LIST,
    "exchange:adverse-events-detail": API_DETAIL("adverse-events"),
    "exchange:transplants-list": API_LIST,
    "exchange:transplants-detail": API_DETAIL("study_id"),
    "exchange:subsequent-therapies-list": API_LIST,
    "exchange:subsequent-therapies-detail": API_DETAIL("subsequent-therapies"),
    "exchange:follow-ups-list": API_LIST,
    "exchange:follow-ups-detail": API_DETAIL("study_id"),
}


def staff_or(outcome, otherwise=OK):
    return lambda role, target: {outcome} if role.staff else {otherwise}


# Admin pages outside the generic rule: its log-in page is public; its log-out page sends
# non-staff to the admin index (which asks them to log in), logs staff out on POST only.
ADMIN_RULES = {
    "admin:login": Rule(),
    "admin:logout": Rule(get=staff_or(NOT_ALLOWED), post=staff_or(LOGIN)),
}
ADMIN_GENERIC = Rule(get=admin_staff, post=admin_staff)


# --- Walking the URLconf -------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern of the root URLconf, with its namespaced name and kwarg names."""

    name: str | None  # "namespace:name"; None for an unnamed pattern
    namespace: str
    route: str  # the pattern strings joined, for messages and unnamed routes
    kwargs: tuple
    patterns: tuple
    positional: int = 0  # unnamed regex groups


def _kwarg_names(pattern) -> list:
    if hasattr(pattern, "converters") and pattern.converters:
        return list(pattern.converters)
    regex = getattr(pattern, "regex", None)
    return list(regex.groupindex) if regex is not None else []


def _unnamed_groups(pattern) -> int:
    regex = getattr(pattern, "regex", None)
    if regex is None or getattr(pattern, "converters", None):
        return 0
    return regex.groups - len(regex.groupindex)


def routes(patterns=None, namespace="", chain=()):
    """Every URLPattern reachable from the root URLconf."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from routes(entry.url_patterns, ns, (*chain, entry.pattern))
        elif isinstance(entry, URLPattern):
            full = (*chain, entry.pattern)
            names = [n for p in full for n in _kwarg_names(p)]
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            positional = sum(_unnamed_groups(p) for p in full)
            route = "".join(str(p) for p in full)
            yield Route(name, namespace, route, tuple(names), full, positional)


def rule_for(route: Route) -> Rule | None:
    if route.namespace == "admin":
        return ADMIN_RULES.get(route.name, ADMIN_GENERIC)
    return RULES.get(route.name)


def unruled_routes() -> list[str]:
    return sorted({f"{r.name or '(unnamed)'}  {r.route}" for r in routes() if rule_for(r) is None})


# --- Admin kwargs, generically ----------------------------------------------------------------


def _site_path(model):
    """The lookup from a model to its Institution, or None for site-less models."""
    from registry.models import Institution, Patient

    if model is Institution:
        return "pk"
    if model is Patient:
        return "institution"
    names = {f.name for f in model._meta.get_fields()}
    if "patient" in names:
        return "patient__institution"
    if "institution" in names:
        return "institution"
    return None


def _admin_model(name):
    """The registered model whose admin URL names start with `name`'s prefix."""
    short = name.split(":", 1)[1]
    best = None
    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if short.startswith(prefix) and (best is None or len(prefix) > len(best[1])):
            best = (model, prefix)
    return best[0] if best else None


def home_object(w, model):
    """An object of `model` at KR01 (or any, for site-less models)."""
    from django.contrib.auth import get_user_model

    if model is get_user_model():
        return w.roles["investigator"].user
    manager = model._default_manager
    path = _site_path(model)
    if path is not None:
        found = manager.filter(**{f"{path}__code" if path != "pk" else "code": "KR01"}).first()
        if found is not None:
            return found
    return manager.order_by("pk").first()


def latest_history(model, obj):
    """The history_id of the object's latest historical record (django-simple-history)."""
    history = getattr(model, "history", None) if model is not None else None
    if history is None or obj is None:
        return None
    found = history.filter(**{model._meta.pk.attname: obj.pk}).order_by("history_id").last()
    return found.history_id if found is not None else None


def admin_targets(w, route: Route):
    from registry.models import Patient

    kwargs = {}
    names = set(route.kwargs)
    if names == {"url"}:  # the admin's catch-all: an unknown admin page
        return [Target({"url": "no-such-page/"}, MISSING)]
    if names == {"app_label"}:
        labels = sorted({m._meta.app_label for m in admin.site._registry})
        return [Target({"app_label": label}) for label in labels]
    if "content_type_id" in names:
        ct = ContentType.objects.get_for_model(Patient)
        return [Target({"content_type_id": ct.pk, "object_id": w.home.pk}, "KR01")]
    model = _admin_model(route.name) if route.name else None
    obj = home_object(w, model) if model is not None else None
    if route.positional == 2 and route.name.endswith("_simple_history"):
        latest = latest_history(model, obj)
        return [Target({}, args=(quote(obj.pk), latest or GUESSED_PK))]
    assert not route.positional, f"no admin args builder for {route.route}"
    for name in names:
        if name in ("object_id", "id", "pk"):
            kwargs[name] = quote(obj.pk) if obj is not None else GUESSED_PK
        elif name == "version_id":
            kwargs[name] = latest_history(model, obj) or GUESSED_PK
        else:
            raise AssertionError(f"No admin kwargs builder for {name!r} of {route.route}")
    return [Target(kwargs)]


def build_url(route: Route, kwargs, args=()) -> str:
    if args:
        return reverse(route.name, args=args)
    if route.name:
        return reverse(route.name, kwargs=kwargs)
    parts = []
    for pattern in route.patterns:  # unnamed admin redirects: plain <conv:name> routes
        text = str(pattern)
        for name, value in kwargs.items():
            text = re.sub(rf"<(?:\w+:)?{name}>", str(value), text)
        parts.append(text)
    return "/" + "".join(parts)


def targets(w, route: Route, rule: Rule):
    if route.namespace == "admin":
        found = admin_targets(w, route)
    else:
        found = rule.build(w)
    out = []
    for target in found:
        extra = [n for n in route.kwargs if n not in target.kwargs]
        if extra == ["format"]:  # the API's ".json" suffix routes
            target = Target({**target.kwargs, "format": "json"}, target.site, target.args)
        elif extra:
            raise AssertionError(f"{route.name}: the rule builds no value for {extra}")
        out.append(target)
    return out


def walk(w):
    """(route, rule, url, target) for every URL pattern and every target of its rule."""
    for route in routes():
        rule = rule_for(route)
        assert rule is not None, f"no rule for {route.name} {route.route}"
        for target in targets(w, route, rule):
            yield route, rule, build_url(route, target.kwargs, target.args), target
