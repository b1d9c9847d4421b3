// Event authorization (content/rooms/v*.md "Authorization rules") and auth events selection
// (content/server-server-api.md "Auth events selection"), per room version, as pure functions.

export { type AuthResult, allow, reject } from "./result";
export { type AuthChecks, authorizeEvent, membershipOf, joinRuleOf } from "./rules";
export {
  type StateTuple,
  type AuthEventsInput,
  authEventsForEvent,
  checkAuthEventsShape,
  authStateFromEvents,
} from "./auth-events";
export {
  type AuthStateLookup,
  type NamedLevel,
  DEFAULT_LEVELS,
  CREATOR_DEFAULT_LEVEL,
  parsePowerLevel,
  roomCreator,
  roomCreators,
  userPowerLevel,
  namedLevel,
  eventSendLevel,
  notificationLevel,
} from "./power-levels";
