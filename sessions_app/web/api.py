"""The sessions API: thin views over ``services`` and ``selectors``, one view per action."""

from functools import wraps

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from agentproj.api import AUTH_ERRORS, THROTTLED_ERRORS, ErrorSerializer, query_params
from agentproj.api_auth import SessionAuthentication
from agentproj.throttling import (
    CancelThrottle,
    EventsThrottle,
    SendThrottle,
    SessionChangeThrottle,
)
from agentproj.vocabulary import TERMINAL_STATUSES
from sessions_app.core import broadcast, lifecycle, selectors, sessions, versions
from sessions_app.models import AgentSession, Turn
from sessions_app.web import views
from sessions_app.web.serializers import (
    AgentOutSerializer,
    CancelInSerializer,
    CancelOutSerializer,
    CancelQuerySerializer,
    EventsOutSerializer,
    EventsQuerySerializer,
    RegenerateInSerializer,
    SessionInSerializer,
    SessionOutSerializer,
    SessionRenameInSerializer,
    TurnInSerializer,
    TurnOutSerializer,
)

# How long ``?wait=1`` holds a cancel's answer for the turn to end.
CANCEL_WAIT_SECONDS = 5.0


# Events per answer; with ``has_more`` a client asks again with ``after`` = the last seq it got.
EVENTS_PAGE = 1000


def own_session(request, session_id) -> AgentSession:
    return get_object_or_404(selectors.sessions_of(request.user), pk=session_id)


class SessionPage(PageNumberPagination):
    """Newest first, ``SESSIONS_PER_PAGE`` an answer; ``next`` links the following page.

    The page number is a whole number from 1, as the schema says: DRF's own reading takes an
    empty value for 1 and ``last`` for the last page."""

    page_size = selectors.SESSIONS_PER_PAGE

    class Query(serializers.Serializer):
        page = serializers.IntegerField(required=False, default=1, min_value=1)

    def get_page_number(self, request, paginator) -> int:
        query = self.Query(data=query_params(request))
        query.is_valid(raise_exception=True)
        return query.validated_data["page"]

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


class SessionListApi(GenericAPIView):
    pagination_class = SessionPage
    throttle_classes = [SessionChangeThrottle]
    # What OPTIONS describes: the fields of a new session.
    serializer_class = SessionInSerializer

    @extend_schema(
        responses={
            200: SessionOutSerializer(many=True),
            400: ErrorSerializer,
            404: ErrorSerializer,
            **AUTH_ERRORS,
        },
        summary="List your sessions",
        description="The user's sessions, newest first, a page at a time (404 past the last).",
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.sessions_with_active_turn(request.user))
        return self.get_paginated_response(SessionOutSerializer(page, many=True).data)

    @extend_schema(
        request=SessionInSerializer,
        responses={
            201: SessionOutSerializer,
            400: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Create a session",
        description="A new, empty session. Without `agent` it uses the default agent profile; "
        "`agent` is an id from `GET /api/agents/` (an unknown one is a 400). Without `title` it "
        'is untitled ("New chat") until its first message names it.',
        # Swagger UI would otherwise offer `"agent": 0`, which names no profile.
        examples=[
            OpenApiExample("A titled session", value={"title": "Trip plans"}, request_only=True),
            OpenApiExample("Untitled until its first message", value={}, request_only=True),
        ],
    )
    def post(self, request):
        data = SessionInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = sessions.session_create(owner=request.user, **data.validated_data)
        return Response(SessionOutSerializer(session).data, status=status.HTTP_201_CREATED)


class AgentListApi(APIView):
    @extend_schema(
        responses={200: AgentOutSerializer(many=True), **AUTH_ERRORS},
        summary="List the agent profiles",
        description="The agent profiles a new session may use (`agent` of `POST /api/sessions/`); "
        "`is_default` marks the one a session gets without a choice.",
    )
    def get(self, request):
        return Response(AgentOutSerializer(selectors.agents_to_pick(), many=True).data)


class SessionDetailApi(APIView):
    throttle_classes = [SessionChangeThrottle]

    @extend_schema(
        responses={200: SessionOutSerializer, 404: ErrorSerializer, **AUTH_ERRORS},
        summary="Get a session",
        description="One of the user's sessions, with its status and active turn (404 for "
        "another user's).",
    )
    def get(self, request, session_id):
        session = get_object_or_404(
            selectors.sessions_with_active_turn(request.user), pk=session_id
        )
        return Response(SessionOutSerializer(session).data)

    @extend_schema(
        request=SessionRenameInSerializer,
        responses={
            200: SessionOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Rename a session",
        description="Give the session a new title, by the rules of `POST /api/sessions/`; an "
        'empty one leaves it untitled ("New chat") until its next message names it.',
        examples=[
            OpenApiExample("A new title", value={"title": "Trip plans, day two"}, request_only=True)
        ],
    )
    def patch(self, request, session_id):
        session = own_session(request, session_id)
        data = SessionRenameInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sessions.session_rename(session=session, title=data.validated_data["title"])
        session = get_object_or_404(
            selectors.sessions_with_active_turn(request.user), pk=session_id
        )
        return Response(SessionOutSerializer(session).data)

    @extend_schema(
        request=None,
        responses={204: None, 404: ErrorSerializer, **AUTH_ERRORS, **THROTTLED_ERRORS},
        summary="Delete a session",
        description="Delete the session with its turns, timeline and approval requests. An "
        "active turn is stopped first (one interrupt notice, its pending approval requests "
        "cancelled), and turns waiting behind it end stopped too.",
    )
    def delete(self, request, session_id):
        session = own_session(request, session_id)
        sessions.session_delete(session=session, actor=request.user)
        # A browser's page goes to the list next, which tells what was deleted; a client with
        # a token has no pages.
        if isinstance(request.successful_authenticator, SessionAuthentication):
            views.told_deleted(request._request, session)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TurnCreateApi(APIView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        request=TurnInSerializer,
        responses={
            202: TurnOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Send a message",
        description="Start a turn with the message; it is answered 202 at once and runs on a "
        "worker (follow it on the websocket or `GET .../events/`). `on_busy`: `reject` (409 "
        "session_busy), `interrupt` "
        "(stop the active turn, then start this one) or `enqueue` (start when it ends). "
        "429 `throttled` beyond the user's rate; 429 `too_many_active_turns` when the turn "
        "would start while the user has MAX_ACTIVE_TURNS_PER_USER turns active; 429 "
        "`budget_exceeded` (with `resets_at`, ISO 8601 UTC) while the user has used up a usage "
        "budget, and nothing is queued.",
        examples=[
            OpenApiExample(
                "A message",
                value={"message": "What time is it in Tokyo?", "on_busy": "reject"},
                request_only=True,
            ),
            OpenApiExample(
                "After the active turn",
                value={"message": "Then summarise it in one line.", "on_busy": "enqueue"},
                request_only=True,
            ),
        ],
    )
    def post(self, request, session_id):
        data = TurnInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with broadcast.sent_together():
                turn = lifecycle.turn_send(
                    session_id=session_id,
                    owner=request.user,
                    message=data.validated_data["message"].strip(),
                    on_busy=data.validated_data["on_busy"],
                )
        except AgentSession.DoesNotExist as exc:
            raise Http404 from exc
        return Response(TurnOutSerializer(turn).data, status=status.HTTP_202_ACCEPTED)


class TurnRegenerateApi(APIView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        request=RegenerateInSerializer,
        responses={
            202: TurnOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Regenerate or edit the last message",
        description="Answer the message of the session's last turn again, as a new version of "
        "that turn: a new turn (202, `queued`) with the same message, or with `message` as the "
        "user edited it, `version_of` the turn's first version, shown from now on; the earlier "
        "versions stay, hidden (`POST .../show/` switches back), and the model's transcript "
        "uses the shown one. Allowed once the last turn ended (completed, stopped or failed), "
        "naming any of its versions. 409 `session_busy` while a turn is active or waiting, "
        "409 `not_last_turn` for an earlier turn; 400 and 429 as for sending a message.",
        examples=[
            OpenApiExample("The same message again", value={}, request_only=True),
            OpenApiExample(
                "The message edited",
                value={"message": "What time is it in Osaka?"},
                request_only=True,
            ),
        ],
    )
    def post(self, request, session_id, turn_id):
        data = RegenerateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        edited = data.validated_data.get("message")
        try:
            with broadcast.sent_together():
                turn = versions.turn_regenerate(
                    session_id=session_id,
                    owner=request.user,
                    turn_id=turn_id,
                    message=None if edited is None else edited.strip(),
                )
        except (AgentSession.DoesNotExist, Turn.DoesNotExist) as exc:
            raise Http404 from exc
        return Response(TurnOutSerializer(turn).data, status=status.HTTP_202_ACCEPTED)


class TurnShowApi(APIView):
    throttle_classes = [SessionChangeThrottle]

    @extend_schema(
        request=None,
        responses={
            200: TurnOutSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Show a version of a turn",
        description="Show this version of its turn instead of the others (made by "
        "`POST .../regenerate/`): the page draws it and hides the others, and the next turn's "
        "model input uses it. Showing the version already shown changes nothing. 409 "
        "`session_busy` while a turn of the session is active or waiting.",
    )
    def post(self, request, session_id, turn_id):
        try:
            with broadcast.sent_together():
                turn = versions.turn_version_show(
                    session_id=session_id, owner=request.user, turn_id=turn_id
                )
        except (AgentSession.DoesNotExist, Turn.DoesNotExist) as exc:
            raise Http404 from exc
        return Response(TurnOutSerializer(turn).data)


class TurnDetailApi(APIView):
    @extend_schema(
        responses={200: TurnOutSerializer, 404: ErrorSerializer, **AUTH_ERRORS},
        summary="Get a turn",
        description="One turn of the session: its status, why it stopped or failed, its "
        "timestamps and the tokens it used.",
    )
    def get(self, request, session_id, turn_id):
        session = own_session(request, session_id)
        turn = get_object_or_404(session.turns, pk=turn_id)
        return Response(TurnOutSerializer(turn).data)


class SessionCancelApi(APIView):
    throttle_classes = [CancelThrottle]

    @extend_schema(
        request=CancelInSerializer,
        parameters=[CancelQuerySerializer],
        responses={
            200: CancelOutSerializer,
            202: CancelOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Stop a turn",
        description="Stop the active turn (or the named one). 200 when it is already terminal, "
        "202 `stopping` while its worker winds down; 409 no_active_turn.",
        examples=[
            OpenApiExample(
                "The active turn", value={"reason": "Wrong question."}, request_only=True
            ),
        ],
    )
    def post(self, request, session_id):
        session = own_session(request, session_id)
        query = CancelQuerySerializer(data=query_params(request))
        query.is_valid(raise_exception=True)
        data = CancelInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = lifecycle.turn_request_cancel(
            session=session,
            actor=request.user,
            reason=data.validated_data["reason"].strip(),
            turn_id=data.validated_data.get("turn"),
        )
        return Response(
            {"turn": outcome.turn.pk, "status": outcome.status},
            status=status.HTTP_200_OK if outcome.is_final else status.HTTP_202_ACCEPTED,
        )


_cancel_now = SessionCancelApi.as_view()


@wraps(_cancel_now)  # DRF's view for the schema, CSRF and everything else: it answers first.
async def session_cancel(request, session_id):
    """``SessionCancelApi``; with ``?wait=1`` its 202 (the turn is stopping) is held until the
    turn is terminal, at most ``CANCEL_WAIT_SECONDS``, waiting for the turn's status on the
    session's group rather than in a thread, and then answered from the turn's row."""
    response = await sync_to_async(_cancel_now)(request, session_id=session_id)
    query = CancelQuerySerializer(data=request.GET.dict())
    if response.status_code != status.HTTP_202_ACCEPTED or not (
        query.is_valid() and query.validated_data["wait"]
    ):
        return response
    turn_id = response.data["turn"]
    read_status = database_sync_to_async(selectors.turn_status)

    async def ended() -> bool:
        return await read_status(turn_id) in TERMINAL_STATUSES

    await broadcast.turn_end(session_id, turn_id, timeout=CANCEL_WAIT_SECONDS, ended=ended)
    turn_status = await read_status(turn_id)
    response.data = {"turn": turn_id, "status": turn_status}
    if turn_status in TERMINAL_STATUSES:
        response.status_code = status.HTTP_200_OK
    return response


class SessionEventsApi(APIView):
    throttle_classes = [EventsThrottle]

    @extend_schema(
        parameters=[EventsQuerySerializer],
        responses={
            200: EventsOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Read the timeline",
        description="The session's timeline events after `after`, oldest first, at most "
        f"{EVENTS_PAGE} an answer; with `has_more` ask again from the last `seq`. Live text "
        "(token deltas) is on the websocket only; an assistant message's event holds its text "
        "so far.",
    )
    def get(self, request, session_id):
        session = own_session(request, session_id)
        query = EventsQuerySerializer(data=query_params(request))
        query.is_valid(raise_exception=True)
        after = query.validated_data["after"]
        page = selectors.events_after(session.pk, after, limit=EVENTS_PAGE + 1)
        return Response({"results": page[:EVENTS_PAGE], "has_more": len(page) > EVENTS_PAGE})
