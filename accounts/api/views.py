"""`POST /api/v1/auth/token/` and `POST /api/v1/auth/logout/`."""

from __future__ import annotations

from django.contrib.auth import authenticate, user_logged_in, user_logged_out
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import schema  # noqa: F401  (registers the token scheme with drf-spectacular, for the schema)
from accounts.authentication import ApiTokenAuthentication
from accounts.lockout import cool_off_seconds, lockout_message, was_locked_out
from accounts.services import token_issue

from .serializers import DetailSerializer, TokenRequestSerializer, TokenSerializer
from .throttling import LoginRateThrottle


class ObtainTokenView(APIView):
    """Trade a username and password for an API token that expires."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]
    throttle_scope = "auth-token"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Missing fields, or a wrong username or password."),
            429: OpenApiResponse(DetailSerializer, description="Too many attempts: throttled or locked out."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        # The request goes to authenticate() so that django-axes counts the attempt and can refuse it.
        user = authenticate(request, **form.validated_data)
        if user is None:
            if was_locked_out(request):
                return Response(
                    {"detail": lockout_message()},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": str(cool_off_seconds())},
                )
            return Response(
                {"non_field_errors": ["Unable to log in with the given username and password."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not user.is_active:
            return Response({"non_field_errors": ["This account is inactive."]}, status=status.HTTP_400_BAD_REQUEST)
        token, key = token_issue(user=user)
        # Like a web login: last_login, axes' access log and the reset of this user's failure count.
        had_session = request.session.session_key is not None
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        if not had_session:
            # Axes makes a session to put its hash in the access log; an API client has no use for it
            # (nor for the cookie that would come with it).
            request.session.flush()
        return Response({"token": key, "expiry": TokenSerializer().fields["expiry"].to_representation(token.expiry)})


class LogoutView(APIView):
    """End the token this call was made with."""

    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        request.auth.delete()
        had_session = request.session.session_key is not None
        user_logged_out.send(sender=request.user.__class__, request=request, user=request.user)
        if not had_session:
            # As at login: axes makes a session to find its access-log row by the session's hash; a
            # token client has none, and a logout must not leave one behind (nor send its cookie).
            request.session.flush()
        return Response(status=status.HTTP_204_NO_CONTENT)
