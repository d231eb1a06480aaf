//! A data channel's delivery policy (RFC 8831 §6.1, W3C `RTCDataChannelInit`):
//! ordered or not, and fully reliable or partially reliable (a number of
//! retransmissions, or a lifetime), as a publisher asks for it in
//! `datachannels/new` (`ordered`, `maxRetransmits`, `maxPacketLifeTime`).
//! The publisher's policy applies to every send, to subscribers too
//! (calls-api.md). Read by the API, written into DCEP opens
//! ([`super::dcep`]) and applied to each SCTP send.

/// How hard SCTP tries to deliver a message (RFC 3758 partial reliability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// Retransmitted until acknowledged.
    Reliable,
    /// Abandoned after this many retransmissions.
    MaxRetransmits(u32),
    /// Abandoned this many ms after it was first sent.
    MaxPacketLifeTime(u32),
}

/// Ordered or not, and how reliable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Messages are delivered in the order sent.
    pub ordered: bool,
    /// How hard each message is retransmitted.
    pub reliability: Reliability,
}

impl Default for DeliveryPolicy {
    /// Ordered and reliable: what a channel is without options.
    fn default() -> Self {
        DeliveryPolicy {
            ordered: true,
            reliability: Reliability::Reliable,
        }
    }
}

/// Why the API's delivery options make no policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `maxRetransmits` and `maxPacketLifeTime` together.
    #[error("maxRetransmits and maxPacketLifeTime are mutually exclusive")]
    BothLimits,
    /// A negative limit, or one past 2^32 − 1.
    #[error("{0} must be between 0 and 4294967295")]
    OutOfRange(&'static str),
}

impl DeliveryPolicy {
    /// The policy of the API's options: `ordered` (default true),
    /// `maxRetransmits` or `maxPacketLifeTime` (ms), at most one of the two,
    /// each ≥ 0.
    pub fn from_api(
        ordered: Option<bool>,
        max_retransmits: Option<i64>,
        max_packet_life_time: Option<i64>,
    ) -> Result<Self, PolicyError> {
        let limit =
            |value: i64, name| u32::try_from(value).map_err(|_| PolicyError::OutOfRange(name));
        let reliability = match (max_retransmits, max_packet_life_time) {
            (Some(_), Some(_)) => return Err(PolicyError::BothLimits),
            (Some(n), None) => Reliability::MaxRetransmits(limit(n, "maxRetransmits")?),
            (None, Some(ms)) => Reliability::MaxPacketLifeTime(limit(ms, "maxPacketLifeTime")?),
            (None, None) => Reliability::Reliable,
        };
        Ok(DeliveryPolicy {
            ordered: ordered.unwrap_or(true),
            reliability,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_options_make_a_policy() {
        assert_eq!(
            DeliveryPolicy::from_api(None, None, None),
            Ok(DeliveryPolicy::default())
        );
        assert_eq!(
            DeliveryPolicy::from_api(Some(false), Some(0), None),
            Ok(DeliveryPolicy {
                ordered: false,
                reliability: Reliability::MaxRetransmits(0),
            })
        );
        assert_eq!(
            DeliveryPolicy::from_api(None, None, Some(150)),
            Ok(DeliveryPolicy {
                ordered: true,
                reliability: Reliability::MaxPacketLifeTime(150),
            })
        );
        assert_eq!(
            DeliveryPolicy::from_api(None, Some(1), Some(1)),
            Err(PolicyError::BothLimits)
        );
        assert_eq!(
            DeliveryPolicy::from_api(None, Some(-1), None),
            Err(PolicyError::OutOfRange("maxRetransmits"))
        );
        assert_eq!(
            DeliveryPolicy::from_api(None, None, Some(1 << 32)),
            Err(PolicyError::OutOfRange("maxPacketLifeTime"))
        );
    }
}
