from projects.crypto import PREFIX, decrypt
from tokens.models import Token, format_error, hash_token


def test_project_key_is_encrypted_at_rest(project):
    assert project.api_key_encrypted.startswith(PREFIX)
    assert "acme-key" not in project.api_key_encrypted
    assert decrypt(project.api_key_encrypted) == "sk-upstream-acme-key-1234567890"


def test_token_is_stored_only_as_its_hash(token_pair):
    token, secret = token_pair
    assert format_error(secret) is None
    stored = Token.objects.get(id=token.id)
    assert stored.token_hash == hash_token(secret)
    assert secret not in str(stored.__dict__)
    assert stored.obfuscated == "sk-" + secret[3:7] + "*" * 14 + secret[-4:]


def test_health_reports_version_and_utc_time(client):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["version"] == "0.1.0" and body["timestamp"].endswith("Z")
    assert response["X-Request-ID"]
