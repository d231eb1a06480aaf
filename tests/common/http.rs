//! Raw HTTP for tests that need more than the JSON API client: any
//! content type, `If-Match`, every response header (WHIP/WHEP, TURN keys).

use std::time::Duration;

/// An HTTP answer: status, headers, body text.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `method` `url` with a bearer token, optional content type, If-Match and body.
pub fn request(
    method: &str,
    url: &str,
    token: &str,
    content_type: Option<&str>,
    if_match: Option<&str>,
    body: &str,
) -> Reply {
    let a = agent();
    let auth = format!("Bearer {token}");
    let mut r = match method {
        "POST" => {
            let mut req = a.post(url).header("Authorization", &auth);
            if let Some(t) = content_type {
                req = req.header("Content-Type", t);
            }
            req.send(body)
        }
        "PATCH" => {
            let mut req = a.patch(url).header("Authorization", &auth);
            if let Some(t) = content_type {
                req = req.header("Content-Type", t);
            }
            if let Some(m) = if_match {
                req = req.header("If-Match", m);
            }
            req.send(body)
        }
        "DELETE" => a.delete(url).header("Authorization", &auth).call(),
        "GET" => a.get(url).header("Authorization", &auth).call(),
        m => panic!("method {m}"),
    }
    .expect("HTTP request");
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Reply {
        status: r.status().as_u16(),
        headers,
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

pub fn post_sdp(url: &str, token: &str, offer: &str) -> Reply {
    request("POST", url, token, Some("application/sdp"), None, offer)
}

/// A PATCH with a trickle/restart fragment.
pub fn patch(url: &str, token: &str, if_match: Option<&str>, fragment: &str) -> Reply {
    request(
        "PATCH",
        url,
        token,
        Some("application/trickle-ice-sdpfrag"),
        if_match,
        fragment,
    )
}

pub fn delete(url: &str, token: &str) -> Reply {
    request("DELETE", url, token, None, None, "")
}

pub fn get(url: &str, token: &str) -> Reply {
    request("GET", url, token, None, None, "")
}
