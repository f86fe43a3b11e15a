"""The approvals API: the same decisions as the admin queue, for approvers only."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from agentproj.throttling import DecideThrottle
from agentproj.validators import DECISION_REASON_MAX_LENGTH, plain_text
from sessions_app.api import (
    AUTH_ERRORS,
    THROTTLED_ERRORS,
    ErrorSerializer,
    StrictCharField,
    query_params,
)

from . import services
from .models import ApprovalRequest, ApprovalStatus


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
        validators=[plain_text],
    )


class ApprovalsQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=ApprovalStatus.choices, required=False, help_text="Only requests in this status."
    )


class ApprovalListApi(APIView):
    permission_classes = [CanDecideApprovals]

    @extend_schema(
        parameters=[ApprovalsQuerySerializer],
        responses={200: ApprovalOutSerializer(many=True), 400: ErrorSerializer, **AUTH_ERRORS},
    )
    def get(self, request):
        query = ApprovalsQuerySerializer(data=query_params(request))
        query.is_valid(raise_exception=True)
        services.approvals_expire()
        approvals = (
            ApprovalRequest.objects.select_related("turn__session__owner", "decided_by")
            .prefetch_related("decisions")
            .order_by("created_at")
        )
        if "status" in query.validated_data:
            approvals = approvals.filter(status=query.validated_data["status"])
        return Response(ApprovalOutSerializer(approvals, many=True).data)


class ApproveInSerializer(DecisionInSerializer):
    arguments = serializers.DictField(
        required=False,
        help_text=(
            "The call's arguments as the approver edited them; checked against the tool's "
            "schema (400 invalid_arguments, the request stays pending). The call runs with these."
        ),
    )


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
        )
        return Response(ApprovalOutSerializer(approval).data)


class ApprovalApproveApi(_DecideApi):
    @extend_schema(request=ApproveInSerializer, responses=DECIDE_RESPONSES)
    def post(self, request, approval_id):
        return self.decide(request, approval_id, approve=True, serializer_class=ApproveInSerializer)


class ApprovalRejectApi(_DecideApi):
    @extend_schema(request=DecisionInSerializer, responses=DECIDE_RESPONSES)
    def post(self, request, approval_id):
        return self.decide(
            request, approval_id, approve=False, serializer_class=DecisionInSerializer
        )
