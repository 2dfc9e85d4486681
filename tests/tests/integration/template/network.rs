//! Where a template's network lets the functions go: security groups' ingress and egress,
//! interface endpoints a subnet reaches, NAT routes, and where each function runs.

use std::collections::BTreeSet;

use serde_yaml::Value;

use super::read::{
    function_setting, functions, get_att, one_or_many, ref_in_sub, ref_name, resources,
    resources_of,
};

/// The security groups an ingress rule of `group` admits `port` (TCP) from: its own
/// `SecurityGroupIngress` and every `AWS::EC2::SecurityGroupIngress` resource on it, by the
/// logical id of the source group.
fn ingress_sources(t: &Value, group: &str, port: u64) -> BTreeSet<String> {
    let covers = |rule: &Value| {
        let protocol = rule["IpProtocol"].as_str().unwrap_or_default();
        let (from, to) = (rule["FromPort"].as_u64(), rule["ToPort"].as_u64());
        protocol == "-1"
            || (protocol == "tcp"
                && from.is_some_and(|f| f <= port)
                && to.is_some_and(|t| port <= t))
    };
    let source = |rule: &Value| {
        let v = &rule["SourceSecurityGroupId"];
        ref_name(v)
            .map(str::to_owned)
            .or_else(|| get_att(v).map(|a| a.split('.').next().unwrap_or_default().to_owned()))
    };
    let own = one_or_many(&resources(t)[group]["Properties"]["SecurityGroupIngress"]);
    let separate = resources(t)
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::EC2::SecurityGroupIngress"))
        .map(|r| &r["Properties"])
        .filter(|p| {
            let g = &p["GroupId"];
            ref_name(g) == Some(group) || get_att(g) == Some(format!("{group}.GroupId"))
        });
    own.into_iter()
        .chain(separate)
        .filter(|rule| covers(rule))
        .filter_map(source)
        .collect()
}

/// Whether `group` lets TCP `port` out to anywhere (`0.0.0.0/0`) or to one of `to`.
fn egress_allows(t: &Value, group: &str, port: u64, to: &BTreeSet<String>) -> bool {
    let props = &resources(t)[group]["Properties"];
    // A group that declares no egress keeps the default allow-all rule.
    if props["SecurityGroupEgress"].is_null() {
        return true;
    }
    let separate = resources(t)
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::EC2::SecurityGroupEgress"))
        .map(|r| &r["Properties"])
        .filter(|p| get_att(&p["GroupId"]) == Some(format!("{group}.GroupId")));
    one_or_many(&props["SecurityGroupEgress"])
        .into_iter()
        .chain(separate)
        .any(|rule| {
            let protocol = rule["IpProtocol"].as_str().unwrap_or_default();
            let port_ok = protocol == "-1"
                || (protocol == "tcp"
                    && rule["FromPort"].as_u64().is_some_and(|f| f <= port)
                    && rule["ToPort"].as_u64().is_some_and(|t| port <= t));
            let dest = &rule["DestinationSecurityGroupId"];
            let dest = get_att(dest)
                .map(|a| a.split('.').next().unwrap_or_default().to_owned())
                .or_else(|| ref_name(dest).map(str::to_owned));
            port_ok
                && (rule["CidrIp"].as_str() == Some("0.0.0.0/0")
                    || dest.is_some_and(|d| to.contains(&d)))
        })
}

/// The interface endpoints for AWS service `service` (`com.amazonaws.${AWS::Region}.<service>`)
/// that a machine in every one of `subnets`, with `groups`, reaches: private DNS on (so the
/// SDK's default endpoint resolves to it), an interface in each subnet, and a security group
/// that admits 443 from one of `groups`, which let 443 out.
pub(super) fn reachable_endpoints(
    t: &Value,
    service: &str,
    subnets: &BTreeSet<String>,
    groups: &BTreeSet<String>,
) -> Vec<String> {
    let wanted = format!("com.amazonaws.${{AWS::Region}}.{service}");
    resources_of(t, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .filter(|(_, r)| {
            let p = &r["Properties"];
            let name = match &p["ServiceName"] {
                Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
                other => other.as_str(),
            };
            if name != Some(wanted.as_str()) || p["VpcEndpointType"].as_str() != Some("Interface") {
                return false;
            }
            let in_subnets: BTreeSet<String> = one_or_many(&p["SubnetIds"])
                .into_iter()
                .filter_map(ref_name)
                .map(str::to_owned)
                .collect();
            let endpoint_groups: BTreeSet<String> = one_or_many(&p["SecurityGroupIds"])
                .into_iter()
                .filter_map(|g| {
                    ref_name(g).map(str::to_owned).or_else(|| {
                        get_att(g).map(|a| a.split('.').next().unwrap_or_default().to_owned())
                    })
                })
                .collect();
            let admitted = endpoint_groups.iter().any(|eg| {
                !ingress_sources(t, eg, 443).is_disjoint(groups)
                    && groups
                        .iter()
                        .all(|g| egress_allows(t, g, 443, &endpoint_groups))
            });
            p["PrivateDnsEnabled"].as_bool() == Some(true)
                && subnets.is_subset(&in_subnets)
                && admitted
        })
        .map(|(id, _)| id.to_owned())
        .collect()
}

/// Whether every one of `subnets` routes `0.0.0.0/0` to a NAT gateway (the other way out
/// of a private subnet).
pub(super) fn nat_route_for(t: &Value, subnets: &BTreeSet<String>) -> bool {
    let nat_tables: BTreeSet<&str> = resources_of(t, "AWS::EC2::Route")
        .into_iter()
        .filter(|(_, r)| {
            r["Properties"]["DestinationCidrBlock"].as_str() == Some("0.0.0.0/0")
                && !r["Properties"]["NatGatewayId"].is_null()
        })
        .filter_map(|(_, r)| ref_name(&r["Properties"]["RouteTableId"]))
        .collect();
    subnets.iter().all(|subnet| {
        resources_of(t, "AWS::EC2::SubnetRouteTableAssociation")
            .into_iter()
            .any(|(_, a)| {
                ref_name(&a["Properties"]["SubnetId"]) == Some(subnet.as_str())
                    && ref_name(&a["Properties"]["RouteTableId"])
                        .is_some_and(|rt| nat_tables.contains(rt))
            })
    })
}

/// Where the functions' code runs, as `(subnets, security groups)` by logical id: each
/// function's own `VpcConfig` on demand, the capacity provider's on Managed Instances.
pub(super) fn function_networks(t: &Value) -> Vec<(String, BTreeSet<String>, BTreeSet<String>)> {
    functions(t)
        .into_iter()
        .map(|id| {
            let provider = ref_in_sub(
                &resources(t)[id.as_str()]["Properties"]["CapacityProviderConfig"]["Arn"],
            );
            let vpc = match &provider {
                Some(p) => &resources(t)[p.as_str()]["Properties"]["VpcConfig"],
                None => function_setting(t, &id, "VpcConfig"),
            };
            let ids = |key: &str| -> BTreeSet<String> {
                one_or_many(&vpc[key])
                    .into_iter()
                    .filter_map(ref_name)
                    .map(str::to_owned)
                    .collect()
            };
            (id, ids("SubnetIds"), ids("SecurityGroupIds"))
        })
        .collect()
}
