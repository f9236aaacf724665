from __future__ import annotations

from rest_framework import serializers


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`; shown only here.")
    expiry = serializers.DateTimeField(help_text="After this the token gets 401; log in again for a new one.")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
