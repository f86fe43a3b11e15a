"""The approvals API: the same decisions as the admin queue, for approvers only."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from agentproj.api import (
    AUTH_ERRORS,
    THROTTLED_ERRORS,
    ErrorSerializer,
    StrictCharField,
    query_params,
)
from agentproj.throttling import DecideThrottle
from agentproj.validators import human_text
from agentproj.vocabulary import DECISION_REASON_MAX_LENGTH
from approvals_app import receipts, selectors, services
from approvals_app.models import ApprovalRequest, ApprovalStatus, SessionGrant


class CanDecideApprovals(BasePermission):
    message = "Only approvers can see and decide approval requests."

    def has_permission(self, request, view):
        return services.can_decide(request.user)


class ApprovalOutSerializer(serializers.ModelSerializer):
    session = serializers.UUIDField(source="turn.session_id", read_only=True)
    requested_by = serializers.CharField(source="turn.session.owner.get_username", read_only=True)
    decided_by = serializers.CharField(
        source="decided_by.get_username", default=None, allow_null=True, read_only=True
    )
    approvals_given = serializers.IntegerField(
        read_only=True, help_text="Distinct approvers who approved the arguments as they stand."
    )
    edited_by = serializers.CharField(
        source="edited_by.get_username", default=None, allow_null=True, read_only=True
    )
    group = serializers.CharField(
        source="group.name",
        default=None,
        allow_null=True,
        read_only=True,
        help_text="Only its members may decide (a policy's rule); null: any approver.",
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "turn",
            "session",
            "requested_by",
            "tool_call_id",
            "tool_name",
            "arguments",
            "edited_arguments",
            "edited_by",
            "status",
            "approvals_needed",
            "approvals_given",
            "allow_self_approval",
            "group",
            "decided_by",
            "decided_at",
            "reason",
            "expires_at",
            "created_at",
        ]


class DecisionInSerializer(serializers.Serializer):
    reason = StrictCharField(
        max_length=DECISION_REASON_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        # It reaches the other approvers' e-mails and Slack: no bidirectional controls.
        validators=[human_text],
    )


class ApprovalPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class ApprovalsQuerySerializer(serializers.Serializer):
    """Checked before the paginator reads ``limit`` and ``offset``: it would quietly replace a
    wrong one with its default, where a client sending one has a bug worth hearing about."""

    status = serializers.ChoiceField(
        choices=ApprovalStatus.choices, required=False, help_text="Only requests in this status."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=ApprovalPagination.max_limit,
        help_text=f"Requests per page (default {ApprovalPagination.default_limit}).",
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, help_text="Requests to skip, oldest first."
    )


class ApprovalPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Requests listed on all pages together.")
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    previous = serializers.URLField(
        allow_null=True, help_text="The previous page; null on the first."
    )
    results = ApprovalOutSerializer(many=True)


class ApprovalListApi(APIView):
    """The requests this approver may see (``selectors.approvals_listed_for``), oldest first, a
    page at a time. A read: pending requests past their deadline are left out, and the scheduled
    housekeeping expires them."""

    permission_classes = [CanDecideApprovals]

    @extend_schema(
        parameters=[ApprovalsQuerySerializer],
        responses={200: ApprovalPageSerializer, 400: ErrorSerializer, **AUTH_ERRORS},
        summary="List approval requests",
        description="The requests this approver may see, oldest first, a page at a time "
        "(approvers only). Pending requests past their deadline are left out.",
    )
    def get(self, request):
        query = ApprovalsQuerySerializer(data=query_params(request))
        query.is_valid(raise_exception=True)
        approvals = (
            selectors.approvals_listed_for(request.user)
            .select_related("turn__session__owner", "decided_by", "edited_by", "group")
            .prefetch_related("decisions")
            .order_by("created_at", "pk")
        )
        if "status" in query.validated_data:
            approvals = approvals.filter(status=query.validated_data["status"])
        paginator = ApprovalPagination()
        page = paginator.paginate_queryset(approvals, request, view=self)
        return paginator.get_paginated_response(ApprovalOutSerializer(page, many=True).data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "boolean"},
            {
                "type": "object",
                "properties": {"match": {"type": "array", "items": {"type": "string"}}},
                "required": ["match"],
                "additionalProperties": False,
            },
        ],
        "description": (
            "Approve for the rest of the session: true for every later call of the tool, or "
            '{"match": ["to"]} for those with the same values of the named arguments.'
        ),
    }
)
class GrantField(serializers.Field):
    """``true`` / ``{"match": [...]}`` in, the argument names to match out (None: no grant)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return [] if data else None
        if (
            isinstance(data, dict)
            and set(data) == {"match"}
            and isinstance(data["match"], list)
            and all(isinstance(name, str) for name in data["match"])
        ):
            return data["match"]
        raise serializers.ValidationError('Give true, or {"match": [argument names]}.')


class ApproveInSerializer(DecisionInSerializer):
    arguments = serializers.DictField(
        required=False,
        help_text=(
            "The call's arguments as the approver edited them; checked against the tool's "
            "schema (400 invalid_arguments, the request stays pending) and judged again by the "
            "policy: a rule that denies them gives 409 policy_denied (the request stays "
            "pending); a stricter rule's group, quorum and four-eyes apply from then on. The "
            "call runs with these."
        ),
    )
    grant = GrantField(required=False)


DECIDE_RESPONSES = {
    200: ApprovalOutSerializer,
    400: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
    **AUTH_ERRORS,
    **THROTTLED_ERRORS,
}


class _DecideApi(APIView):
    permission_classes = [CanDecideApprovals]
    throttle_classes = [DecideThrottle]

    def decide(self, request, approval_id, *, approve: bool, serializer_class):
        get_object_or_404(ApprovalRequest, pk=approval_id)
        data = serializer_class(data=request.data)
        data.is_valid(raise_exception=True)
        approval = services.approval_decide(
            approval_id=approval_id,
            actor=request.user,
            approve=approve,
            reason=data.validated_data["reason"],
            arguments=data.validated_data.get("arguments"),
            grant=data.validated_data.get("grant"),
        )
        return Response(ApprovalOutSerializer(approval).data)


class ApprovalApproveApi(_DecideApi):
    @extend_schema(
        request=ApproveInSerializer,
        responses=DECIDE_RESPONSES,
        summary="Approve a tool call",
        description="Approve the pending call, as it is or with edited `arguments`; with "
        "`grant`, later calls of the tool in the session run without asking. A request that "
        "needs more approvers stays pending until enough have approved. 409 `not_pending` "
        "once it is decided, cancelled or expired; 409 `self_approval_forbidden` for the "
        "requester where the rule forbids it.",
        # For the built-in send_email tool: arguments and grants name that tool's arguments.
        examples=[
            OpenApiExample(
                "Approve", value={"reason": "Checked the recipient."}, request_only=True
            ),
            OpenApiExample(
                "Approve with edited arguments",
                value={
                    "reason": "Sent to the team list instead.",
                    "arguments": {
                        "to": "team@example.com",
                        "subject": "Weekly report",
                        "body": "All good this week.",
                    },
                },
                request_only=True,
            ),
            OpenApiExample(
                "Approve for the rest of the session, to the same recipient",
                value={"grant": {"match": ["to"]}},
                request_only=True,
            ),
        ],
    )
    def post(self, request, approval_id):
        return self.decide(request, approval_id, approve=True, serializer_class=ApproveInSerializer)


class ApprovalRejectApi(_DecideApi):
    @extend_schema(
        request=DecisionInSerializer,
        responses=DECIDE_RESPONSES,
        summary="Reject a tool call",
        description="Reject the pending call: the turn goes on without it, and the model is "
        "told the reason. 409 `not_pending` once it is decided, cancelled or expired.",
        examples=[
            OpenApiExample(
                "Reject", value={"reason": "Not to an outside address."}, request_only=True
            )
        ],
    )
    def post(self, request, approval_id):
        return self.decide(
            request, approval_id, approve=False, serializer_class=DecisionInSerializer
        )


class GrantOutSerializer(serializers.ModelSerializer):
    granted_by = serializers.CharField(
        source="granted_by.get_username", default=None, allow_null=True, read_only=True
    )
    revoked_by = serializers.CharField(
        source="revoked_by.get_username", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = SessionGrant
        fields = [
            "id",
            "session",
            "tool_name",
            "match",
            "approval",
            "granted_by",
            "created_at",
            "revoked_at",
            "revoked_by",
        ]


class SessionGrantRevokeApi(APIView):
    permission_classes = [CanDecideApprovals]
    throttle_classes = [DecideThrottle]

    @extend_schema(
        request=None,
        responses={
            200: GrantOutSerializer,
            404: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
        summary="Revoke a session grant",
        description="Later calls of the grant's tool in the session ask for approval again "
        "(approvers only). Revoking a revoked grant changes nothing.",
    )
    def post(self, request, session_id, grant_id):
        get_object_or_404(SessionGrant, pk=grant_id, session_id=session_id)
        grant = services.grant_revoke(session_id=session_id, grant_id=grant_id, actor=request.user)
        return Response(GrantOutSerializer(grant).data)


class ReceiptApproverSerializer(serializers.Serializer):
    user = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


class ReceiptBodySerializer(serializers.Serializer):
    request = serializers.IntegerField()
    tool = serializers.CharField()
    arguments_sha256 = serializers.CharField(help_text="Of the arguments as executed.")
    approvers = ReceiptApproverSerializer(many=True)
    rule = serializers.CharField()
    executed_at = serializers.DateTimeField()
    result_sha256 = serializers.CharField(help_text="Of the tool result text the model received.")


class ReceiptSerializer(serializers.Serializer):
    receipt = ReceiptBodySerializer()
    signature = serializers.CharField(
        help_text='Base64 Ed25519 over the canonical JSON of "receipt" (sorted keys, no spaces, '
        "UTF-8)."
    )


class ApprovalReceiptApi(APIView):
    @extend_schema(
        responses={200: ReceiptSerializer, 404: ErrorSerializer, **AUTH_ERRORS},
        summary="The signed receipt of an executed approved call",
        description="For the approvers who decided the request, its requester and superusers; "
        "404 for anyone else, and before the approved call has run. Check it with the key at "
        "`/api/approvals/receipt-key/` or `manage.py verify_receipt FILE`.",
    )
    def get(self, request, approval_id):
        approval = ApprovalRequest.objects.filter(pk=approval_id).select_related("turn__session")
        approval = approval.first()
        if approval is None or not receipts.may_read(request.user, approval):
            raise NotFound()
        if not receipts.is_executed(approval):
            raise NotFound("The approved call has not run: it has no receipt yet.")
        return Response(receipts.receipt_of(approval))


class ReceiptKeyApi(APIView):
    # A public key: whoever holds a receipt may check it, without an account here.
    permission_classes = [AllowAny]

    @extend_schema(
        responses={(200, "application/x-pem-file"): OpenApiTypes.STR},
        summary="The public key that checks approval receipts (PEM)",
        description="The Ed25519 public key, as PEM, whose signatures the receipts carry; "
        "open to anyone, so that whoever holds a receipt can check it "
        "(`manage.py verify_receipt FILE --key KEY.pem`).",
    )
    def get(self, request):
        return HttpResponse(receipts.public_key_pem(), content_type="application/x-pem-file")
