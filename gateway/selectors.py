"""Reads of gateways for the console's and the API's views, through the permission policy
(`core.permissions`): a gateway the user may not see is a 404, never a 403 that confirms it
exists."""

from __future__ import annotations

from core.errors import NotFound, PermissionDenied
from core.permissions import Action, User, can, gateways_for
from gateway.models import Gateway

MANAGE_DENIED = "Only owners and admins of the resource group may change its gateways."


def gateway_to_manage(user: User, pk: int) -> Gateway:
    """The live gateway `pk`, with its resource group, if `user` may change it
    (`Action.MANAGE_GATEWAYS` in its group).

    Raises:
        NotFound: no such live gateway, or one in a group where `user` has no role (404).
        PermissionDenied: a member of its group whose role may not change gateways (403: they
            can see that it exists).
    """
    gateway = gateways_for(user).select_related("resource_group").filter(pk=pk).first()
    if gateway is None:
        raise NotFound("No such AI gateway.")
    if not can(user, Action.MANAGE_GATEWAYS, gateway.resource_group):
        raise PermissionDenied(MANAGE_DENIED)
    return gateway
