//! The kernel-wide policy knobs and the online types, in the words sysfs and the kernel
//! command line use.

use serde::Deserialize;

/// `auto_online_blocks`: what happens to new memory blocks right after a hot-add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoOnline {
    Offline,
    Online,
    OnlineKernel,
    OnlineMovable,
}

impl AutoOnline {
    /// The kernel's sysfs text.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoOnline::Offline => "offline",
            AutoOnline::Online => "online",
            AutoOnline::OnlineKernel => "online_kernel",
            AutoOnline::OnlineMovable => "online_movable",
        }
    }

    /// How a new block is onlined under this setting (`None`: left offline).
    pub fn online_type(self) -> Option<OnlineType> {
        match self {
            AutoOnline::Offline => None,
            AutoOnline::Online => Some(OnlineType::Online),
            AutoOnline::OnlineKernel => Some(OnlineType::OnlineKernel),
            AutoOnline::OnlineMovable => Some(OnlineType::OnlineMovable),
        }
    }

    /// The value sysfs shows as `name`, if any.
    pub fn from_name(name: &str) -> Option<AutoOnline> {
        [AutoOnline::Offline, AutoOnline::Online, AutoOnline::OnlineKernel, AutoOnline::OnlineMovable]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// `memory_hotplug.online_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnlinePolicy {
    ContigZones,
    AutoMovable,
}

/// How a block is onlined (the sysfs `state` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineType {
    Online,
    OnlineKernel,
    OnlineMovable,
}

impl OnlineType {
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineType::Online => "online",
            OnlineType::OnlineKernel => "online_kernel",
            OnlineType::OnlineMovable => "online_movable",
        }
    }
}
