"""Personal API tokens in the console: created with a name and optional expiry, shown once,
listed with their prefix and last use, revoked by their owner only; a revoked token stops
authenticating the management API at once."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from keys.models import ApiToken
from keys.tokens import hash_secret
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def secret_in(html: str) -> str:
    start = html.index('id="new-api-token"')
    value = html.index('value="', start - 200) + len('value="')
    return html[value : html.index('"', value)]


def test_a_user_creates_a_token_sees_it_once_and_the_api_accepts_it(client):
    user = UserFactory()
    client.force_login(user)

    response = client.post(reverse("api-token-list"), {"name": "CI pipeline", "expires_at": ""})

    assert response.status_code == 200
    secret = secret_in(response.content.decode())
    assert secret.startswith("aigwp_")
    token = ApiToken.objects.get(user=user)
    assert token.hashed_secret == hash_secret(secret)
    assert secret not in client.get(reverse("api-token-list")).content.decode()  # never again
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/gateways").status_code == 200


@pytest.mark.parametrize(
    ("form", "message"),
    [({"name": ""}, "This field is required."), ({"name": "x", "expires_at": "2001-01-01T00:00"}, "in the future")],
)
def test_an_invalid_form_names_the_problem_and_creates_nothing(client, form, message):
    client.force_login(UserFactory())
    response = client.post(reverse("api-token-list"), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_a_token_stops_it_at_once(client):
    user = UserFactory()
    client.force_login(user)
    secret = secret_in(client.post(reverse("api-token-list"), {"name": "laptop"}).content.decode())
    token = ApiToken.objects.get()

    response = client.post(reverse("api-token-revoke", args=[token.pk]), follow=True)

    assert "is revoked" in response.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/gateways").status_code == 401


def test_another_users_token_is_neither_listed_nor_revocable(client):
    owner = UserFactory()
    client.force_login(owner)
    client.post(reverse("api-token-list"), {"name": "mine"})
    token = ApiToken.objects.get()

    client.force_login(UserFactory())
    assert "mine" not in client.get(reverse("api-token-list")).content.decode()
    assert client.post(reverse("api-token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("api-token-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
