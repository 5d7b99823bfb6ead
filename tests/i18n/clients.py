"""The browsers the language tests play: a Korean one (its Accept-Language) and a logged-in
client with any headers."""

from django.test import Client

KO = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9,en;q=0.5"}


def client_for(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client
