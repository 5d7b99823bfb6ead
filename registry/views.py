from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .access import patients_for


@login_required
def case_list(request):
    patients = patients_for(request.user).select_related("institution")[:200]
    return render(request, "registry/case_list.html", {"patients": patients})
