from django import template

from registry.models import CrfStatus

register = template.Library()

STATUS_CLASSES = {
    CrfStatus.NOT_STARTED: "text-bg-secondary",
    CrfStatus.IN_PROGRESS: "text-bg-warning",
    CrfStatus.COMPLETE: "text-bg-success",
    CrfStatus.QUERY_OPEN: "text-bg-danger",
    CrfStatus.VERIFIED: "text-bg-info",
    CrfStatus.LOCKED: "text-bg-dark",
}


@register.inclusion_tag("registry/_status.html")
def crf_status(status):
    """A CRF's status as a Bootstrap badge."""
    return {"status": status, "css": STATUS_CLASSES.get(status.status, "text-bg-light")}
