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
        read_only=True, help_text="Distinct approvers who approved so far."
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
            "status",
            "approvals_needed",
            "approvals_given",
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


class _DecideApi(APIView):
    permission_classes = [CanDecideApprovals]
    throttle_classes = [DecideThrottle]
    approve: bool

    @extend_schema(
        request=DecisionInSerializer,
        responses={
            200: ApprovalOutSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            **AUTH_ERRORS,
            **THROTTLED_ERRORS,
        },
    )
    def post(self, request, approval_id):
        get_object_or_404(ApprovalRequest, pk=approval_id)
        data = DecisionInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        approval = services.approval_decide(
            approval_id=approval_id,
            actor=request.user,
            approve=self.approve,
            reason=data.validated_data["reason"],
        )
        return Response(ApprovalOutSerializer(approval).data)


class ApprovalApproveApi(_DecideApi):
    approve = True


class ApprovalRejectApi(_DecideApi):
    approve = False
