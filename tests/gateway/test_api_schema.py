"""The OpenAPI schema at /api/schema/ and the browsable docs at /api/docs/ (served locally)."""

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_documents_the_quotas_api_with_its_errors_and_the_bearer_token(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    quotas = schema["paths"]["/api/v1/quotas"]
    assert set(quotas) >= {"get", "post", "patch", "delete"}
    assert {"200", "400", "404"} <= set(quotas["get"]["responses"])
    assert "409" in quotas["post"]["responses"]
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token, `aigwp_…`.",
    }


def test_the_schema_has_no_errors_or_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(client):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()
